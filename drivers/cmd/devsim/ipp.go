package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var errNotInstalled = errors.New("not installed")

// ippPrinter is CUPS's ippeveprinter, a real IPP Everywhere printer, with the private dbus-daemon
// and avahi-daemon (loopback only, publishing off) it needs even with -r off. Each job runs a
// script that fails the job and reports media-empty while DIR/faults/media-empty exists.
type ippPrinter struct {
	uri    string
	dir    string
	procs  []*exec.Cmd
	done   []chan struct{}
	mu     sync.Mutex
	faults faultSet
}

func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s %w (Debian cups-ipp-utils, avahi-daemon, dbus)", name, errNotInstalled)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func startIPP(ctx context.Context, dir string, logw io.Writer) (_ *ippPrinter, err error) {
	bins := map[string]string{}
	for _, b := range []string{"ippeveprinter", "avahi-daemon", "dbus-daemon"} {
		if bins[b], err = findBin(b); err != nil {
			return nil, err
		}
	}
	p := &ippPrinter{dir: dir, faults: faultSet{}}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	for _, d := range []string{"spool", "faults"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	bus := filepath.Join(dir, "bus")
	os.Remove(bus)
	files := map[string]string{
		"dbus.conf":  fmt.Sprintf(dbusConf, bus),
		"avahi.conf": avahiConf,
		"job.sh": "#!/bin/sh\n# devsim: fail the job while the media-empty fault is on\n" +
			"if [ -e " + filepath.Join(dir, "faults", "media-empty") + " ]; then echo 'STATE: +media-empty' >&2; exit 1; fi\n" +
			"echo 'STATE: -media-empty' >&2\nexit 0\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			return nil, err
		}
	}
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)
	var avahiOut bytes.Buffer
	var outMu sync.Mutex // the processes write from their own goroutines
	shared := logw
	logw = writerFunc(func(b []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return shared.Write(b) })
	start := func(out io.Writer, name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive devsim
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		p.procs, p.done = append(p.procs, cmd), append(p.done, done)
		return nil
	}
	if err := start(logw, bins["dbus-daemon"], "--config-file="+filepath.Join(dir, "dbus.conf"), "--nofork"); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "dbus socket", func() bool { return fileExists(bus) }); err != nil {
		return nil, err
	}
	avahi := []string{bins["avahi-daemon"], "-f", filepath.Join(dir, "avahi.conf"), "--no-drop-root", "--no-chroot", "--no-rlimits"}
	// avahi-daemon keeps a machine-wide pid file in /run/avahi-daemon; as root, give it a private
	// mount namespace with its own, so several kiosks (and a system daemon) can coexist.
	if _, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		avahi = []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			"mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec " + strings.Join(avahi, " ")}
	}
	aw := writerFunc(func(b []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return avahiOut.Write(b) })
	if err := start(aw, avahi[0], avahi[1:]...); err != nil {
		return nil, err
	}
	if err := waitUntil(ctx, "avahi-daemon startup", func() bool {
		outMu.Lock()
		defer outMu.Unlock()
		return strings.Contains(avahiOut.String(), "Server startup complete")
	}); err != nil {
		outMu.Lock()
		defer outMu.Unlock()
		return nil, fmt.Errorf("%w\n%s", err, avahiOut.String())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := start(logw, bins["ippeveprinter"], "-k", "-r", "off", "-p", strconv.Itoa(port), "-n", "localhost", // -n 127.0.0.1 exits: "Unable to create IPv6 listener"

		"-d", filepath.Join(dir, "spool"), "-f", "application/pdf,image/pwg-raster", "-c", filepath.Join(dir, "job.sh"), "kiosk-a4"); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitUntil(ctx, "ippeveprinter listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return nil, err
	}
	p.uri = "ipp://" + addr + "/ipp/print"
	return p, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func waitUntil(ctx context.Context, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not happen within 15 s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// stop ends the processes in reverse order and waits for them.
func (p *ippPrinter) stop() {
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done[i]:
		case <-time.After(3 * time.Second):
			p.procs[i].Process.Kill()
			<-p.done[i]
		}
	}
	p.procs, p.done = nil, nil
}

func (p *ippPrinter) setFault(name string, on bool) error {
	if name != "media-empty" {
		return fmt.Errorf("%w %q for ipp (known: media-empty)", errUnknownFault, name)
	}
	flag := filepath.Join(p.dir, "faults", name)
	var err error
	if on {
		err = os.WriteFile(flag, nil, 0o644)
	} else if err = os.Remove(flag); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err == nil {
		p.mu.Lock()
		p.faults[name] = on
		p.mu.Unlock()
	}
	return err
}

func (p *ippPrinter) info() info {
	p.mu.Lock()
	defer p.mu.Unlock()
	return info{ID: "a4", Kind: "ipp", Profile: profIPP, Path: p.uri, Plugged: true, Faults: p.faults.active(), Known: []string{"media-empty"}}
}

const dbusConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
`

const avahiConf = `[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
`
