// Package pgtest runs a throwaway PostgreSQL server for tests: Debian's binaries, a cluster made
// by initdb in a temporary folder, listening on a free 127.0.0.1 port (TCP only, trust auth), run
// as the postgres user when the test runs as root (initdb refuses root). One server serves a whole
// test package (Run, from TestMain); every test gets a database of its own (DB). The server never
// outlives the test binary: it is stopped when Run returns, and gets SIGQUIT if the binary dies.
//
// Tests skip, saying why, only where the PostgreSQL binaries are absent; a server that is present
// but fails to start fails the tests. The cluster runs with fsync=off, for speed: a test of what
// survives an operating-system crash cannot use it (a killed server process loses nothing either
// way, the kernel keeps what was written).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres marks a machine without the PostgreSQL server binaries.
var ErrNoPostgres = errors.New("pgtest: no PostgreSQL server binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin; install Debian's postgresql (.ci/install-peers)")

// Settings are the server settings (postgres -c) every server starts with, besides its port and
// address; Start's own settings come after them, and a later setting wins.
var Settings = []string{
	"fsync=off", "full_page_writes=off", // speed; see the package comment
	"unix_socket_directories=", // TCP only: no socket path that the postgres user must reach
	"max_connections=200",
	"log_min_messages=warning",
}

// Server is a running PostgreSQL server.
type Server struct {
	Port     int
	settings []string
	dir      string // holds data/ and postgres.log
	bin      string
	cred     *syscall.Credential // run as this user (root runs as postgres), nil: as ourselves

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	dbs  atomic.Int64
}

// Start makes a new cluster in a temporary folder and starts a server on it with Settings and then
// settings ("name=value"; "fsync=on" for a durable server, as benchmarks want). It returns
// ErrNoPostgres when the binaries are absent.
func Start(ctx context.Context, settings ...string) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, settings: append(slices.Clone(Settings), settings...)}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.remove()
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", "postgres", "--auth=trust",
		"--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		s.remove()
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A port found free may be taken before the server binds it: try a few.
	for range 3 {
		if s.Port, err = freePort(); err != nil {
			break
		}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
	}
	s.remove()
	return nil, err
}

// Restart starts the server again on the same cluster and port, after Stop or Kill. After a
// kill, the old server's processes may take a moment to go; Restart retries until ctx ends.
func (s *Server) Restart(ctx context.Context) error {
	for {
		err := s.start(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start runs postgres and waits until it accepts connections (or exits, or 30 s pass).
func (s *Server) start(ctx context.Context) error {
	args := []string{"-D", s.data(), "-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1"}
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: its children go too.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", s.Log())
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("pgtest: postgres not accepting connections within 30 s: %w\n%s", err, s.Log())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast shutdown: SIGINT) and waits for it; one still there after
// 10 s is killed. Stop may be called again.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT, 10*time.Second) }

// Kill kills the server's main process with SIGKILL, as the kernel's OOM killer would, and waits
// for it to exit; its children notice and exit on their own. Restart brings it back.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 10*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("pgtest: postgres did not stop within %v of %v; killed", grace, sig)
	}
}

// CPU returns the CPU time (user and system) the server has used: its main process's, its live
// processes' (backends, WAL writer...) and its ended processes', as Linux's /proc tells them. A
// benchmark divides it by what it did: the database's share of the work, beside its own.
func (s *Server) CPU() (time.Duration, error) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("pgtest: server not running")
	}
	main := cmd.Process.Pid
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	var ticks int64
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// The fields after the command name, which is in parentheses and may hold spaces: state,
		// ppid, ... utime (12th), stime, cutime, cstime.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		if len(f) < 15 || pid != main && f[1] != strconv.Itoa(main) {
			continue
		}
		n := 2
		if pid == main {
			n = 4 // and its children that ended
		}
		for _, v := range f[11 : 11+n] {
			t, _ := strconv.ParseInt(v, 10, 64)
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ
}

// Close stops the server and removes its folder.
func (s *Server) Close() error {
	err := s.Stop()
	s.remove()
	return err
}

func (s *Server) remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// URL is the connection URL of database db as the superuser postgres.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDatabase creates a new, empty database with a unique name and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (string, string, error) {
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", "", fmt.Errorf("pgtest: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return name, s.URL(name), nil
}

// DropDatabase drops database name, ending its connections.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database: %w", err)
	}
	return nil
}

// Log returns the end of what the server wrote (for failure messages).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b[max(0, len(b)-8000):])
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// command prepares a PostgreSQL program to run as the server's user, in its folder.
func (s *Server) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// findBin finds the folder holding initdb and postgres: $PATH, else the newest
// /usr/lib/postgresql/N/bin (Debian keeps them off PATH).
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); isFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if isFile(filepath.Join(dir, "initdb")) && isFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", ErrNoPostgres
}

// version is N of /usr/lib/postgresql/N/bin.
func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and initdb refuses root: %w (Debian's postgresql package creates the user)", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// The package's server, started by Run.
var (
	shared    *Server
	sharedErr error
)

// Run starts the package's server, runs the tests and stops the server; TestMain calls it:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// When the server cannot start, the tests still run, and DB skips (no binaries) or fails them.
func Run(m *testing.M) int {
	shared, sharedErr = Start(context.Background())
	if shared != nil {
		defer shared.Close()
	}
	return m.Run()
}

// Shared returns the package's server (nil when Run did not start one) and why it is absent.
func Shared() (*Server, error) {
	if shared == nil && sharedErr == nil {
		return nil, errors.New("pgtest: no server: TestMain must call pgtest.Run")
	}
	return shared, sharedErr
}

// DB creates a database on the package's server for t, drops it when t ends, and returns its
// URL. It skips t where PostgreSQL is not installed and fails it where the server did not start.
func DB(t testing.TB) string {
	t.Helper()
	s, err := Shared()
	if errors.Is(err, ErrNoPostgres) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	name, url, err := s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		if err := s.DropDatabase(context.Background(), name); err != nil {
			t.Error(err)
		}
	})
	return url
}
