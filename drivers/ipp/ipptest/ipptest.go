// Package ipptest starts a real IPP Everywhere printer for tests: CUPS's ippeveprinter on a free
// loopback port, with the private dbus-daemon and avahi-daemon (limited to lo, publishing off) it
// needs even with -r off. Jobs are kept byte-identical in a spool directory; a per-job command
// (-c) lets a test inject faults such as media-empty.
package ipptest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Printer is a running ippeveprinter.
type Printer struct {
	URI      string // ipp://127.0.0.1:PORT/ipp/print
	SpoolDir string // where job files land
	Name     string
	procs    []*proc
}

// Options configure Start.
type Options struct {
	Name    string // printer name; default "kiosk-a4"
	Formats string // -f; default application/pdf,image/pwg-raster
	// Command is a shell script run for every job with the job file as $1 (ippeveprinter -c).
	// It may write "STATE: +media-empty" to standard error to change printer-state-reasons; a
	// non-zero exit aborts the job. Empty means ippeveprinter's own simulated printing (~10 s).
	Command string
}

// FaultMediaEmpty is a job command that reports media-empty and fails the job.
const FaultMediaEmpty = "echo 'STATE: +media-empty' >&2\nexit 1\n"

// Quick is a job command that completes the job at once and clears media-empty.
const Quick = "echo 'STATE: -media-empty' >&2\nexit 0\n"

type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Start starts the printer and its daemons; they are stopped by t.Cleanup. It skips the test if
// ippeveprinter, avahi-daemon or dbus-daemon is not installed (.ci/install-peers installs them).
func Start(t testing.TB, opt Options) *Printer {
	t.Helper()
	for _, b := range []string{"ippeveprinter", "avahi-daemon", "dbus-daemon"} {
		if _, err := exec.LookPath(b); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + b); err2 != nil {
				t.Skipf("ipptest: %s not installed (Debian cups-ipp-utils, avahi-daemon, dbus): %v", b, err)
			}
		}
	}
	if opt.Name == "" {
		opt.Name = "kiosk-a4"
	}
	if opt.Formats == "" {
		opt.Formats = "application/pdf,image/pwg-raster"
	}
	dir := t.TempDir()
	p := &Printer{SpoolDir: filepath.Join(dir, "spool"), Name: opt.Name}
	t.Cleanup(p.stop)
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatalf("ipptest: %v", err)
		}
	}
	must(os.Mkdir(p.SpoolDir, 0o755))

	bus := filepath.Join(dir, "bus")
	must(os.WriteFile(filepath.Join(dir, "dbus.conf"), []byte(fmt.Sprintf(dbusConf, bus)), 0o644))
	must(os.WriteFile(filepath.Join(dir, "avahi.conf"), []byte(avahiConf), 0o644))
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)

	p.start(t, env, "dbus-daemon", "--config-file="+filepath.Join(dir, "dbus.conf"), "--nofork")
	waitFor(t, p, "dbus socket", func() bool { _, err := os.Stat(bus); return err == nil })

	// avahi-daemon keeps a machine-wide pid file in /run/avahi-daemon; as root, give it a private
	// mount namespace with its own /run/avahi-daemon so that several tests (and a system daemon)
	// can coexist. Where that is not allowed, fall back to a plain start.
	avahi := []string{"avahi-daemon", "-f", filepath.Join(dir, "avahi.conf"), "--no-drop-root", "--no-chroot", "--no-rlimits"}
	started := func(av *proc) bool {
		waitFor(t, p, "avahi-daemon startup", func() bool { return av.exited() || strings.Contains(av.output(), "Server startup complete") })
		return !av.exited()
	}
	ok := false
	if _, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		ok = started(p.start(t, env, "unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
			`mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec "$@"`, "sh"}, avahi...)...))
	}
	if !ok && !started(p.start(t, env, avahi[0], avahi[1:]...)) {
		t.Fatalf("ipptest: avahi-daemon exited\n%s", p.Log())
	}

	port := freePort(t)
	args := []string{"-k", "-r", "off", "-p", strconv.Itoa(port), "-n", "localhost", "-d", p.SpoolDir, "-f", opt.Formats}
	if opt.Command != "" {
		script := filepath.Join(dir, "job.sh")
		must(os.WriteFile(script, []byte("#!/bin/sh\n"+opt.Command), 0o755))
		args = append(args, "-c", script)
	}
	p.start(t, env, "ippeveprinter", append(args, opt.Name)...)
	p.URI = fmt.Sprintf("ipp://127.0.0.1:%d/ipp/print", port)
	waitFor(t, p, "ippeveprinter listening", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// JobFiles lists the files in the spool directory matching pattern ("*.pdf"). Job files are
// named JOBID-JOBNAME.EXT; the job command may leave a .prn beside them.
func (p *Printer) JobFiles(pattern string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(p.SpoolDir, pattern))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range m {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			out = append(out, f)
		}
	}
	return out, nil
}

// Log is everything the printer and its daemons wrote so far (for failure messages).
func (p *Printer) Log() string {
	var b strings.Builder
	for _, pr := range p.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", strings.Join(pr.cmd.Args, " "), pr.output())
	}
	return b.String()
}

func (p *Printer) start(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path = "/usr/sbin/" + name
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	out := &bytes.Buffer{}
	pr := &proc{cmd: cmd, out: out, done: make(chan struct{})}
	sb := &lockedWriter{p: pr}
	cmd.Stdout, cmd.Stderr = sb, sb
	if err := cmd.Start(); err != nil {
		t.Fatalf("ipptest: start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(pr.done) }()
	p.procs = append(p.procs, pr)
	return pr
}

var outMu sync.Mutex

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return w.p.out.Write(b)
}

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

func (pr *proc) output() string {
	outMu.Lock()
	defer outMu.Unlock()
	return pr.out.String()
}

// stop ends the processes in reverse order of start and waits for them.
func (p *Printer) stop() {
	for i := len(p.procs) - 1; i >= 0; i-- {
		pr := p.procs[i]
		_ = pr.cmd.Process.Signal(os.Interrupt)
		select {
		case <-pr.done:
		case <-time.After(3 * time.Second):
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

func waitFor(t testing.TB, p *Printer, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("ipptest: %s did not happen within 15s\n%s", what, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ipptest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
