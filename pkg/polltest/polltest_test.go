package polltest

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	var n atomic.Int32
	if !Poll(10*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that holds at the third poll did not")
	}
	if n.Load() != 3 {
		t.Fatalf("polled %d times, want 3: Poll goes on after the condition held", n.Load())
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds did")
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("Poll gave up before its deadline")
	}
}
