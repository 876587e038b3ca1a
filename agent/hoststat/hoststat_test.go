package hoststat

import "testing"

func TestRead(t *testing.T) {
	s := &Sampler{Disk: t.TempDir()}
	a, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	if a.MemTotal == 0 || a.RSSBytes == 0 || a.DiskTotal == 0 || a.UptimeS <= 0 {
		t.Fatalf("implausible sample %+v", a)
	}
	for i := 0; i < 1e6; i++ { // burn a little CPU so the second read has a delta
		_ = i * i
	}
	b, err := s.Read()
	if err != nil || b.CPUPercent < 0 || b.CPUPercent > 100 {
		t.Fatalf("second sample %+v %v", b, err)
	}
}

func TestMissingProc(t *testing.T) {
	s := &Sampler{Proc: t.TempDir(), Disk: t.TempDir()}
	if _, err := s.Read(); err == nil {
		t.Fatal("no error for an empty /proc")
	}
}
