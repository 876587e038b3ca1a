// Package ippeve starts a CUPS ippeveprinter IPP Everywhere printer on loopback with its private
// dbus and avahi daemons, for simulators and tests. ippeveprinter needs Avahi even with -r off;
// the dbus-daemon listens on a unix socket in the work folder and avahi-daemon is limited to lo
// with publishing off. Jobs are kept byte-identical in the spool folder; a per-job command (-c)
// can complete jobs at once or inject faults such as media-empty.
package ippeve

import (
	"bytes"
	"cmp"
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

// ErrNotInstalled: ippeveprinter, avahi-daemon or dbus-daemon is missing.
var ErrNotInstalled = errors.New("not installed")

// maxSocketPath is the size of sockaddr_un.sun_path on Linux, the terminating NUL included.
const maxSocketPath = 108

// Options configure Start.
type Options struct {
	Dir     string // work folder: daemon configs, dbus socket, job script and spool/ (required)
	Name    string // printer name; default "kiosk-a4"
	Port    int    // TCP port on 127.0.0.1; 0 picks a free one
	Formats string // -f; default application/pdf,image/pwg-raster
	// Command is a shell script run for every job with the job file as $1 (ippeveprinter -c).
	// It may write "STATE: +media-empty" to standard error to change printer-state-reasons; a
	// non-zero exit aborts the job. Empty means ippeveprinter's own simulated printing (~10 s).
	Command string
	// Log receives what dbus-daemon and ippeveprinter write; nil keeps it for Printer.Log.
	// avahi-daemon's output is always kept (Start waits for its startup message).
	Log io.Writer
}

// Printer is a running ippeveprinter with its daemons.
type Printer struct {
	URI      string // ipp://127.0.0.1:PORT/ipp/print
	SpoolDir string // where job files land
	procs    []*proc
	mu       sync.Mutex // the processes write from their own goroutines
}

type proc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

// LookPath finds one of the programs Start runs, also in /usr/sbin, which is not on every PATH.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := "/usr/sbin/" + name; exists(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s %w (Debian cups-ipp-utils, avahi-daemon, dbus)", name, ErrNotInstalled)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start starts dbus-daemon, avahi-daemon and ippeveprinter, each waited for (15 s at most, less
// if ctx ends first), and returns once the printer accepts connections. On error nothing is left
// running. The processes get SIGTERM if the thread that started them dies; Stop ends them.
func Start(ctx context.Context, o Options) (_ *Printer, err error) {
	bins := map[string]string{}
	for _, b := range []string{"ippeveprinter", "avahi-daemon", "dbus-daemon"} {
		if bins[b], err = LookPath(b); err != nil {
			return nil, err
		}
	}
	if o.Dir == "" {
		return nil, errors.New("ippeve: Options.Dir is required")
	}
	// The daemons change their working folder, so every path they get is absolute.
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return nil, fmt.Errorf("ippeve: %w", err)
	}
	o.Name = cmp.Or(o.Name, "kiosk-a4")
	o.Formats = cmp.Or(o.Formats, "application/pdf,image/pwg-raster")
	p := &Printer{SpoolDir: filepath.Join(o.Dir, "spool")}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	if err := os.MkdirAll(p.SpoolDir, 0o755); err != nil {
		return nil, err
	}
	bus := filepath.Join(o.Dir, "bus")
	if len(bus) >= maxSocketPath {
		return nil, fmt.Errorf("ippeve: dbus socket path %s is %d bytes, a unix socket path takes at most %d: use a shorter Options.Dir", bus, len(bus), maxSocketPath-1)
	}
	os.Remove(bus) // left by an earlier run in the same folder
	files := map[string]string{"dbus.conf": fmt.Sprintf(dbusConf, bus), "avahi.conf": avahiConf}
	if o.Command != "" {
		files["job.sh"] = "#!/bin/sh\n" + o.Command
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(body), 0o755); err != nil {
			return nil, err
		}
	}
	env := append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+bus)

	if _, err := p.start(env, o.Log, bins["dbus-daemon"], "--config-file="+filepath.Join(o.Dir, "dbus.conf"), "--nofork"); err != nil {
		return nil, err
	}
	if err := p.wait(ctx, "dbus socket", func() bool { return exists(bus) }); err != nil {
		return nil, err
	}

	// avahi-daemon keeps a machine-wide pid file in /run/avahi-daemon; as root, give it a private
	// mount namespace with its own /run/avahi-daemon so that several printers (and a system
	// daemon) can coexist. Where that is refused, fall back to a plain start.
	avahi := []string{bins["avahi-daemon"], "-f", filepath.Join(o.Dir, "avahi.conf"), "--no-drop-root", "--no-chroot", "--no-rlimits"}
	startAvahi := func(args ...string) (bool, error) {
		av, err := p.start(env, nil, args[0], args[1:]...)
		if err != nil {
			return false, err
		}
		err = p.wait(ctx, "avahi-daemon startup", func() bool { return av.exited() || strings.Contains(p.output(av), "Server startup complete") })
		return err == nil && !av.exited(), err
	}
	ok := false
	if _, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		if ok, err = startAvahi(append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && exec "$@"`, "sh"}, avahi...)...); err != nil {
			return nil, err
		}
	}
	if !ok {
		if ok, err = startAvahi(avahi...); err == nil && !ok {
			err = fmt.Errorf("ippeve: avahi-daemon exited\n%s", p.Log())
		}
		if err != nil {
			return nil, err
		}
	}

	port := o.Port
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	// -n localhost, not 127.0.0.1: with an address ippeveprinter exits "Unable to create IPv6 listener".
	args := []string{"-k", "-r", "off", "-p", strconv.Itoa(port), "-n", "localhost", "-d", p.SpoolDir, "-f", o.Formats}
	if o.Command != "" {
		args = append(args, "-c", filepath.Join(o.Dir, "job.sh"))
	}
	if _, err := p.start(env, o.Log, bins["ippeveprinter"], append(args, o.Name)...); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := p.wait(ctx, "ippeveprinter listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return nil, err
	}
	p.URI = "ipp://" + addr + "/ipp/print"
	return p, nil
}

// start runs a process whose output goes to logw, or is kept for Log if logw is nil.
func (p *Printer) start(env []string, logw io.Writer, name string, args ...string) (*proc, error) {
	pr := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	out := io.Writer(&pr.out)
	if logw != nil {
		out = logw
	}
	w := writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return out.Write(b) })
	pr.cmd.Env, pr.cmd.Stdout, pr.cmd.Stderr = env, w, w
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the caller
	if err := pr.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ippeve: start %s: %w", name, err)
	}
	go func() { pr.cmd.Wait(); close(pr.done) }()
	p.procs = append(p.procs, pr)
	return pr, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

func (p *Printer) output(pr *proc) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pr.out.String()
}

// Log is what the printer and its daemons wrote so far that did not go to Options.Log (for
// failure messages).
func (p *Printer) Log() string {
	var b strings.Builder
	for _, pr := range p.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", strings.Join(pr.cmd.Args, " "), p.output(pr))
	}
	return b.String()
}

// JobFiles lists the files in the spool folder matching pattern ("*.pdf"). Job files are named
// JOBID-JOBNAME.EXT; the job command may leave a .prn beside them.
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

func (p *Printer) wait(ctx context.Context, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ippeve: %s did not happen within 15 s: %w\n%s", what, context.Cause(ctx), p.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Stop ends the processes in reverse order of start and waits for them; one that ignores SIGTERM
// for 3 s is killed, and reported in the error. Stop may be called again; Log still works.
func (p *Printer) Stop() error {
	var errs []error
	for i := len(p.procs) - 1; i >= 0; i-- {
		pr := p.procs[i]
		pr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.done:
		case <-time.After(3 * time.Second):
			pr.cmd.Process.Kill()
			<-pr.done
			errs = append(errs, fmt.Errorf("ippeve: %s ignored SIGTERM for 3 s, killed", filepath.Base(pr.cmd.Path)))
		}
	}
	return errors.Join(errs...)
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
