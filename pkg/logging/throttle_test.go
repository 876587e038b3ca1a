package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	th := &Throttle{Interval: time.Hour}
	for range 100 {
		th.Log(context.Background(), l, slog.LevelWarn, "refused")
	}
	if n := strings.Count(buf.String(), "refused"); n != 1 {
		t.Fatalf("%d records passed within the interval, want 1:\n%s", n, buf.String())
	}
	th.next.Store(0) // the interval has passed
	th.Log(context.Background(), l, slog.LevelWarn, "refused")
	if !strings.Contains(buf.String(), "dropped=99") {
		t.Fatalf("the next record does not count the 99 dropped:\n%s", buf.String())
	}
}
