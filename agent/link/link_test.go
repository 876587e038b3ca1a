package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
)

// connectErr wraps err as paho's Connect does for a network failure.
func connectErr(err error) error { return fmt.Errorf("%w : %w", packets.ErrorNetworkError, err) }

func TestBusy(t *testing.T) {
	opErr := func(op string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
	}
	for _, tc := range []struct {
		name string
		err  error
		busy bool
	}{
		{"CONNACK server unavailable", packets.ErrorRefusedServerUnavailable, true},
		{"handshake cut: reset", connectErr(opErr("read", syscall.ECONNRESET)), true},
		{"handshake cut: EOF", connectErr(io.EOF), true},
		{"handshake timed out", connectErr(context.DeadlineExceeded), true},
		{"CONNACK timed out", connectErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), true},
		{"CONNACK not authorized", packets.ErrorRefusedNotAuthorised, false},
		{"hub not listening", connectErr(opErr("dial", syscall.ECONNREFUSED)), false},
		{"certificate refused", connectErr(errors.New("remote error: tls: bad certificate")), false},
	} {
		if got := busy(tc.err); got != tc.busy {
			t.Errorf("%s (%v): busy %v, want %v", tc.name, tc.err, got, tc.busy)
		}
	}
}

func TestNextBackoff(t *testing.T) {
	l := &Link{cfg: Config{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}}
	busyErr := fmt.Errorf("connect: %w: %w", errBusy, packets.ErrorRefusedServerUnavailable)
	hard := errors.New("connect: not Authorized")
	for _, tc := range []struct {
		from time.Duration
		err  error
		want time.Duration
	}{
		{500 * time.Millisecond, busyErr, time.Second},
		{time.Second, busyErr, 2 * time.Second},
		{2 * time.Second, busyErr, 2 * time.Second}, // capped at BusyBackoff MinBackoffs
		{8 * time.Second, busyErr, 2 * time.Second}, // the hub answers: what it grew to while it did not is dropped
		{2 * time.Second, hard, 4 * time.Second},
		{20 * time.Second, hard, 30 * time.Second},
	} {
		if got := l.nextBackoff(tc.from, tc.err); got != tc.want {
			t.Errorf("nextBackoff(%v, %v) = %v, want %v", tc.from, tc.err, got, tc.want)
		}
	}
}

// TestSessionTurnedAway: a hub that closes connections before answering the TLS handshake (no
// handshake slot) turns the kiosk away busy; one that is not listening does not.
func TestSessionTurnedAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1)
			c.Read(buf) // the ClientHello has arrived; close without reading it all: a reset
			c.Close()
		}
	}()
	refusing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := refusing.Addr().String()
	refusing.Close()
	for _, tc := range []struct {
		addr string
		busy bool
	}{{ln.Addr().String(), true}, {closedAddr, false}} {
		l, err := New(Config{DeviceID: "kiosk-busy", Brokers: []string{tc.addr}, Outbox: outbox.NewMemory(outbox.Options{}),
			TLS: &tls.Config{}})
		if err != nil {
			t.Fatal(err)
		}
		err = l.session(context.Background(), tc.addr)
		if got := errors.Is(err, errBusy); got != tc.busy {
			t.Errorf("%s: %v: busy %v, want %v", tc.addr, err, got, tc.busy)
		}
	}
	ln.Close()
	<-done
}
