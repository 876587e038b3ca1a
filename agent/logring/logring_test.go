package logring

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRingKeepsRedactsAndPassesOn(t *testing.T) {
	var out bytes.Buffer
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log = log.With("device", "k-1").WithGroup("cmd")

	log.Debug("not kept")
	log.Info("card read", "number", "11010519491231002X", "phone", "13812345678")
	log.Warn("printer", slog.Group("paper", "level", "low"), "note", "two words")

	lines, gone := r.Since(0, 10)
	if gone != 0 || len(lines) != 2 {
		t.Fatalf("Since(0) = %d lines, %d gone; want 2, 0", len(lines), gone)
	}
	if got, want := lines[0].Text, "card read device=k-1 cmd.number=[id] cmd.phone=[phone]"; got != want {
		t.Errorf("line 1 = %q, want %q", got, want)
	}
	if got, want := lines[1].Text, `printer device=k-1 cmd.paper.level=low cmd.note="two words"`; got != want {
		t.Errorf("line 2 = %q, want %q", got, want)
	}
	if lines[0].Level != "INFO" || lines[1].Level != "WARN" || lines[0].N != 1 || lines[1].N != 2 || lines[0].TS == 0 {
		t.Errorf("lines = %+v", lines)
	}
	// The wrapped handler gets the record unchanged, at its own level.
	if s := out.String(); strings.Contains(s, "card read") || !strings.Contains(s, "printer") {
		t.Errorf("wrapped handler got %q", s)
	}
	select {
	case <-r.Notify():
	default:
		t.Error("no notification of kept lines")
	}
}

func TestRingIsBounded(t *testing.T) {
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.DiscardHandler))
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		log.Info(m)
	}
	lines, gone := r.Since(0, 10)
	if gone != 2 || len(lines) != 3 || lines[0].Text != "c" || lines[2].Text != "e" || lines[2].N != 5 {
		t.Fatalf("Since(0) = %+v, %d gone; want c..e, 2 gone", lines, gone)
	}
	if lines, gone := r.Since(3, 1); gone != 0 || len(lines) != 1 || lines[0].Text != "d" {
		t.Fatalf("Since(3, 1) = %+v, %d", lines, gone)
	}
	if lines, _ := r.Since(5, 10); len(lines) != 0 || r.Next() != 6 {
		t.Fatalf("Since(5) = %+v, Next %d", lines, r.Next())
	}
	log.Info(strings.Repeat("é", 1000))
	if lines, _ := r.Since(5, 10); len(lines) != 1 || len(lines[0].Text) > 1024 || !strings.HasSuffix(lines[0].Text, "é") {
		t.Fatalf("a long line is not clipped on a rune boundary: %d bytes", len(lines[0].Text))
	}
}
