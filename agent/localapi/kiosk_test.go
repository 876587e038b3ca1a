package localapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/agent/devices/devicestest"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/drivers/docscan/docscantest"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ipptest"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan/qrscansim"
	"github.com/kioskfleet/kioskfleet/drivers/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// kiosk is an agent's device manager on simulated peripherals that speak the real protocols
// (GA 467 and ESC/POS on pseudo-terminals, a serial QR scanner, ippeveprinter for IPP, SANE's test
// backend), with the local API served on a loopback listener as the daemon serves it.
type kiosk struct {
	m       *devices.Manager
	api     *localapi.Server
	url     string // ws://127.0.0.1:PORT/xfs4iot/v1.0/kiosk
	shell   string // the shell's origin
	card    *idcardsim.Sim
	receipt *escpossim.Pty
	qr      *qrscansim.Sim
	qrPath  string // the link the manager opens
	a4      *ipptest.Printer
	logs    *lockedBuffer
}

type kioskOptions struct {
	a4      bool   // an IPP printer (ippeveprinter)
	a4Job   string // its job command; default ipptest.Quick
	scanner bool   // a SANE scanner (test backend)
	card    *idcardsim.Card
	apps    localapi.Apps
	login   localapi.Authenticator
	config  func(*localapi.Config)
}

func startKiosk(t testing.TB, o kioskOptions) *kiosk {
	t.Helper()
	k := &kiosk{logs: &lockedBuffer{}}
	log := slog.New(slog.NewJSONHandler(k.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var entries []profile.DeviceEntry

	master, pty := transporttest.PtyPair(t)
	k.card = idcardsim.New(o.card)
	simCtx, stopSims := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() { defer close(simDone); k.card.Run(simCtx, master) }()
	t.Cleanup(func() { stopSims(); <-simDone })
	entries = append(entries, profile.DeviceEntry{ID: "idcard0", Profile: "huaxin-hx-r200-serial", Path: link(t, pty)})

	var err error
	if k.receipt, err = escpossim.NewPty(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.receipt.Close() })
	entries = append(entries, profile.DeviceEntry{ID: "receipt0", Profile: "hengtai-kp80-serial", Path: link(t, k.receipt.Path)})

	if k.qr, err = qrscansim.New(qrscan.SuffixCR); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.qr.Close() })
	k.qrPath = link(t, k.qr.Path)
	entries = append(entries, profile.DeviceEntry{ID: "qr0", Profile: "saoma-qr20-serial", Path: k.qrPath})

	if o.a4 {
		if o.a4Job == "" {
			o.a4Job = ipptest.Quick
		}
		k.a4 = ipptest.Start(t, ipptest.Options{Command: o.a4Job})
		entries = append(entries, profile.DeviceEntry{ID: "a4", URI: k.a4.URI})
	}
	if o.scanner {
		entries = append(entries, profile.DeviceEntry{ID: "scan0", SANE: "test:0", Env: map[string]string{"SANE_CONFIG_DIR": docscantest.SANEConfig(t)}})
	}

	profs, err := profile.LoadDir("../../firmware-profiles")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range profs {
		p.Quirks.PollInterval = 0
	}
	k.m, err = devices.New(devices.Config{Devices: &profile.DeviceConfig{Devices: entries}, Profiles: profs,
		Reporter: devicestest.NewRecorder(), Log: log.With("component", "devices"), PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopManager := context.WithCancel(context.Background())
	managerDone := make(chan struct{})
	go func() { defer close(managerDone); k.m.Run(mctx) }()
	t.Cleanup(func() { stopManager(); <-managerDone })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origins := localapi.ShellOrigins(ln.Addr().String())
	k.shell = origins[0]
	k.url = "ws://" + ln.Addr().String() + localapi.Path
	cfg := localapi.Config{Devices: k.m, Log: log.With("component", "localapi"), ShellOrigins: origins, Apps: o.apps, Login: o.login,
		CardPoll: 50 * time.Millisecond}
	if o.config != nil {
		o.config(&cfg)
	}
	if k.api, err = localapi.New(cfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(localapi.Path, k.api)
	hs := &http.Server{Handler: mux}
	served := make(chan struct{})
	go func() { defer close(served); hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := k.api.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Shutdown(ctx)
		<-served
	})

	deadline := time.Now().Add(15 * time.Second)
	for _, e := range entries {
		for !connected(k.m, e.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("device %s not connected: %+v", e.ID, k.m.Snapshot())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return k
}

func connected(m *devices.Manager, id string) bool {
	d, _ := devicestest.Find(m.Snapshot(), id)
	return d.Connected && d.Status != devices.StateUnknown
}

// link returns a symlink to a pty, as /dev/serial/by-id gives for real ports.
func link(t testing.TB, pty string) string {
	t.Helper()
	l := filepath.Join(t.TempDir(), filepath.Base(pty))
	if err := os.Symlink(pty, l); err != nil {
		t.Fatal(err)
	}
	return l
}

// dial connects as the shell.
func (k *kiosk) dial(t testing.TB) *localapitest.Client {
	t.Helper()
	return localapitest.MustDial(t, k.url, k.shell)
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// expect fails the test unless r completed with code (and, when errorCode is not "", that
// payload errorCode).
func expect(t testing.TB, r localapitest.Result, code, errorCode string) {
	t.Helper()
	if r.Ack.Header.Status != "" {
		t.Fatalf("refused with %s: %s", r.Ack.Header.Status, r.Ack.Raw)
	}
	if r.Code() != code {
		t.Fatalf("completion %s, want %s: %s", r.Code(), code, r.Completion.Raw)
	}
	if errorCode != "" {
		var p struct {
			ErrorCode string `json:"errorCode"`
		}
		r.Completion.Decode(t, &p)
		if p.ErrorCode != errorCode {
			t.Fatalf("errorCode %q, want %q: %s", p.ErrorCode, errorCode, r.Completion.Raw)
		}
	}
}
