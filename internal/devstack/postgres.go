package devstack

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPGBinDir names the environment variable that, when set, is the only
// directory searched for initdb and postgres.
const EnvPGBinDir = "BALDUR_PG_BIN_DIR"

// debianPGRoot is where the Debian and Ubuntu "postgresql" packages install one
// directory per major version, each with a bin directory.
const debianPGRoot = "/usr/lib/postgresql"

// Names of the files and directories inside a cluster directory.
const (
	pgDataDir    = "data"
	pgLogFile    = "postgres.log"
	pgInitdbLog  = "initdb.log"
	pgOwnerFile  = "baldur-owner.pid"
	pgTempPrefix = "baldur-pg-"
)

// PostgresSuperuser is the superuser name of every cluster StartPostgres
// creates, whether or not it runs as root.
const PostgresSuperuser = "postgres"

// PostgresBinaries names the PostgreSQL server programs a cluster is run with.
type PostgresBinaries struct {
	// Dir is the directory that holds both programs.
	Dir string
	// Initdb is the path of initdb.
	Initdb string
	// Postgres is the path of the postgres server.
	Postgres string
}

// FindPostgres locates initdb and postgres: in the directory named by
// BALDUR_PG_BIN_DIR when it is set (and nowhere else), else on the PATH, else
// in the highest version under /usr/lib/postgresql/*/bin. It returns an error
// wrapping ErrNoPostgres when they cannot be found.
func FindPostgres() (PostgresBinaries, error) {
	return findPostgres(os.Getenv(EnvPGBinDir), exec.LookPath, debianPGRoot)
}

func findPostgres(binDir string, lookPath func(string) (string, error), debianRoot string) (PostgresBinaries, error) {
	if binDir != "" {
		b, err := binariesIn(binDir)
		if err != nil {
			return PostgresBinaries{}, fmt.Errorf("devstack: %s=%q: %w: %w", EnvPGBinDir, binDir, err, ErrNoPostgres)
		}
		return b, nil
	}
	if initdb, err := lookPath("initdb"); err == nil {
		if pg, err := lookPath("postgres"); err == nil {
			initdb, pg = resolve(initdb), resolve(pg)
			if filepath.Dir(initdb) == filepath.Dir(pg) {
				return PostgresBinaries{Dir: filepath.Dir(pg), Initdb: initdb, Postgres: pg}, nil
			}
		}
	}
	for _, dir := range versionDirs(debianRoot) {
		if b, err := binariesIn(dir); err == nil {
			return b, nil
		}
	}
	return PostgresBinaries{}, ErrNoPostgres
}

// versionDirs lists root/*/bin, highest version first ("16" before "15" before
// "9.6").
func versionDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type versioned struct {
		parts []int
		dir   string
	}
	var found []versioned
	for _, e := range entries {
		parts, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		found = append(found, versioned{parts: parts, dir: filepath.Join(root, e.Name(), "bin")})
	}
	slices.SortFunc(found, func(a, b versioned) int { return slices.Compare(b.parts, a.parts) })
	dirs := make([]string, len(found))
	for i, v := range found {
		dirs[i] = v.dir
	}
	return dirs
}

func parseVersion(s string) ([]int, bool) {
	fields := strings.Split(s, ".")
	parts := make([]int, len(fields))
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, false
		}
		parts[i] = n
	}
	return parts, true
}

func binariesIn(dir string) (PostgresBinaries, error) {
	b := PostgresBinaries{Dir: dir, Initdb: filepath.Join(dir, "initdb"), Postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.Initdb, b.Postgres} {
		fi, err := os.Stat(p)
		if err != nil {
			return PostgresBinaries{}, fmt.Errorf("no %s", filepath.Base(p))
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return PostgresBinaries{}, fmt.Errorf("%s is not an executable file", p)
		}
	}
	return b, nil
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// PostgresOptions configure StartPostgres. The zero value starts a throw-away
// cluster tuned for tests on a free port.
type PostgresOptions struct {
	// Binaries are the server programs; the zero value means FindPostgres.
	Binaries PostgresBinaries
	// Dir is the cluster directory. Empty: a new directory under os.TempDir()
	// that Stop removes. Set: the directory is kept, and initdb runs only when
	// it holds no cluster yet (so `baldur dev` keeps its data across runs).
	Dir string
	// Fallback is where a kept cluster lives when the server's user cannot
	// reach Dir: as root the server runs as the "postgres" user, who cannot
	// enter a private directory such as a 0700 home. The cluster is then kept
	// in Fallback/<hash of Dir> and Dir becomes a symbolic link to it, so
	// that deleting Dir still starts over. Empty means DefaultPostgresFallback.
	Fallback string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// MaxConnections is the server's max_connections; 0 means 200, enough for
	// many parallel tests each holding a small pool.
	MaxConnections int
	// Durable keeps fsync, synchronous_commit and full_page_writes on. When
	// false (the default) they are off: fast, and fine for data that may be
	// lost.
	Durable bool
	// Settings are further server settings, passed as -c name=value.
	Settings map[string]string
}

// DefaultPostgresFallback is PostgresOptions.Fallback's default: a place
// every server user can reach, kept across reboots.
const DefaultPostgresFallback = "/var/lib/baldur/pg"

// Postgres is a running PostgreSQL server started by StartPostgres.
type Postgres struct {
	dir     string
	linked  string // PostgresOptions.Dir when it is a link to dir
	temp    bool
	port    int
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// defaultPGStartTimeout bounds initdb plus start-up when ctx has no deadline.
const defaultPGStartTimeout = 90 * time.Second

// StartPostgres initialises (when needed) and starts a PostgreSQL cluster
// listening on 127.0.0.1 and on a unix socket in its directory, and returns
// once it accepts connections. The superuser is "postgres" with trust
// authentication. Stop shuts it down.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPGStartTimeout)
		defer cancel()
	}
	bins := opts.Binaries
	if bins.Postgres == "" || bins.Initdb == "" {
		var err error
		if bins, err = FindPostgres(); err != nil {
			return nil, err
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}

	p := &Postgres{}
	if err := p.place(opts, cred); err != nil {
		return nil, err
	}
	if err := p.initdb(ctx, bins, cred); err != nil {
		p.removeDir()
		return nil, err
	}

	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				p.removeDir()
				return nil, err
			}
		}
		err = p.start(ctx, bins, cred, port, opts)
		if err == nil {
			return p, nil
		}
		// Another process may have taken the free port between our probe and
		// the server's bind: try another one.
		if opts.Port != 0 || attempt == attempts || !strings.Contains(err.Error(), "could not bind") {
			p.removeDir()
			return nil, err
		}
	}
}

// postgresCredential returns the credential to run PostgreSQL with: nil for a
// normal user, the "postgres" user's for root.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(PostgresSuperuser)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoPostgresUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("devstack: postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("devstack: postgres group id %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// place chooses the cluster directory: a new temporary one, or opts.Dir,
// or, when the server's user cannot reach opts.Dir, one under opts.Fallback
// that opts.Dir links to. It leaves the directory ready for that user.
func (p *Postgres) place(opts PostgresOptions, cred *syscall.Credential) error {
	if opts.Dir == "" {
		return p.placeTemp(cred)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return fmt.Errorf("devstack: PostgreSQL directory: %w", err)
	}
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if target, err := filepath.EvalSymlinks(dir); err == nil {
			// A link left by an earlier start (or made by hand): the
			// cluster is where it points. A dangling one is replaced below.
			p.dir, p.linked = target, dir
			return prepareDir(p.dir, cred)
		}
	}
	if _, blocked := unreachable(dir, cred); blocked == "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("devstack: create PostgreSQL directory: %w", err)
		}
		p.dir = dir
		return prepareDir(p.dir, cred)
	}
	return p.relocate(dir, cmp.Or(opts.Fallback, DefaultPostgresFallback), cred)
}

// placeTemp creates a temporary cluster directory under os.TempDir(), or
// under /tmp when the server's user cannot reach os.TempDir().
func (p *Postgres) placeTemp(cred *syscall.Credential) error {
	base := os.TempDir()
	if _, blocked := unreachable(filepath.Join(base, pgTempPrefix), cred); blocked != "" {
		base = "/tmp"
	}
	removeStaleClusters(base)
	dir, err := os.MkdirTemp(base, pgTempPrefix+"*")
	if err != nil {
		return fmt.Errorf("devstack: create PostgreSQL directory: %w", err)
	}
	p.dir, p.temp = dir, true
	if err := os.WriteFile(filepath.Join(p.dir, pgOwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		p.removeDir()
		return fmt.Errorf("devstack: write owner file: %w", err)
	}
	if err := prepareDir(p.dir, cred); err != nil {
		p.removeDir()
		return err
	}
	return nil
}

// relocate keeps the cluster of dir, which the server's user cannot reach,
// in fallback/<hash of dir> and makes dir a link to it. A cluster found
// there without the link is what is left of a data directory that was
// deleted to start over, and is removed.
func (p *Postgres) relocate(dir, fallback string, cred *syscall.Credential) error {
	sum := sha256.Sum256([]byte(dir))
	target := filepath.Join(fallback, "dev-"+hex.EncodeToString(sum[:6]))
	if fi, err := os.Lstat(dir); err == nil {
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			// A link whose cluster is gone: a new one takes its place.
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("devstack: remove the dangling link %s: %w", dir, err)
			}
		case !fi.IsDir():
			return fmt.Errorf("devstack: PostgreSQL directory %s is not a directory", dir)
		default:
			// An empty directory, as an earlier failed start left it, makes
			// way for the link; one with data in it is not ours to move.
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("devstack: the postgres user cannot reach %s, and it cannot be replaced by a link "+
					"to a place it can reach (%v): move it out of the way with `mv %s %s.old` and start again",
					dir, err, dir, dir)
			}
		}
	}
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("devstack: remove the stale cluster in %s: %w", target, err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("devstack: create PostgreSQL directory %s (%s is out of the postgres user's reach): %w",
			target, dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("devstack: create PostgreSQL directory: %w", err)
	}
	if err := os.Symlink(target, dir); err != nil {
		return fmt.Errorf("devstack: link %s to the PostgreSQL directory %s: %w", dir, target, err)
	}
	p.dir, p.linked = target, dir
	return prepareDir(p.dir, cred)
}

// prepareDir makes dir usable by the server's user: mode 0755, owned by that
// user when it is not us, and reachable through every parent directory.
func prepareDir(dir string, cred *syscall.Credential) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("devstack: chmod PostgreSQL directory: %w", err)
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("devstack: hand PostgreSQL directory to the postgres user: %w", err)
	}
	if mode, blocked := unreachable(dir, cred); blocked != "" {
		return fmt.Errorf("devstack: the postgres user cannot reach the PostgreSQL directory %s: "+
			"directory %s (mode %v) is closed to it; open it with: chmod o+x %s",
			dir, blocked, mode, blocked)
	}
	return nil
}

// unreachable returns the nearest existing parent of dir that the user of
// cred cannot traverse, and its mode; "" when there is none (or cred is nil:
// we run the server ourselves). Parents that do not exist yet are skipped:
// they are created with mode 0755.
func unreachable(dir string, cred *syscall.Credential) (os.FileMode, string) {
	if cred == nil {
		return 0, ""
	}
	for parent := filepath.Dir(dir); ; parent = filepath.Dir(parent) {
		if fi, err := os.Stat(parent); err == nil && !traversable(fi, cred) {
			return fi.Mode().Perm(), parent
		}
		if parent == filepath.Dir(parent) {
			return 0, ""
		}
	}
}

func traversable(fi os.FileInfo, cred *syscall.Credential) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case perm&0o001 != 0:
		return true
	case ok && st.Uid == cred.Uid:
		return perm&0o100 != 0
	case ok && st.Gid == cred.Gid:
		return perm&0o010 != 0
	}
	return false
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, pgDataDir) }

func (p *Postgres) initdb(ctx context.Context, bins PostgresBinaries, cred *syscall.Credential) error {
	if _, err := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); err == nil {
		return nil // an existing cluster, kept from an earlier run
	}
	logf, err := os.Create(filepath.Join(p.dir, pgInitdbLog))
	if err != nil {
		return fmt.Errorf("devstack: create initdb log: %w", err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bins.Initdb,
		"-D", p.dataDir(),
		"-U", PostgresSuperuser,
		"-A", "trust",
		"-E", "UTF8",
		"--locale=C",
		"--no-sync",
	)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: initdb (%s): %w\n%s", ErrPostgresStart, bins.Initdb, err, tail(filepath.Join(p.dir, pgInitdbLog)))
	}
	return nil
}

func (p *Postgres) start(ctx context.Context, bins PostgresBinaries, cred *syscall.Credential, port int, opts PostgresOptions) error {
	maxConns := opts.MaxConnections
	if maxConns == 0 {
		maxConns = 200
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": p.dir,
		"max_connections":         strconv.Itoa(maxConns),
		"shared_buffers":          "64MB",
	}
	if !opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", p.dataDir()}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}

	logf, err := os.OpenFile(filepath.Join(p.dir, pgLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("devstack: open PostgreSQL log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	logStart, _ := logf.Seek(0, io.SeekEnd)

	cmd := exec.Command(bins.Postgres, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: if we die, it goes too.
	// (The kernel sends it when the thread that started the server exits;
	// Go keeps its threads for the life of the process unless a goroutine
	// that locked its thread exits, which the callers here never do.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: run %s: %w", ErrPostgresStart, bins.Postgres, err)
	}
	p.cmd, p.port, p.done, p.waitErr = cmd, port, make(chan struct{}), nil
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	if err := p.waitReady(ctx); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%w on port %d: %w\n%s", ErrPostgresStart, port, err, tailFrom(filepath.Join(p.dir, pgLogFile), logStart))
	}
	return nil
}

// waitReady connects until the server answers, the server exits or ctx ends.
func (p *Postgres) waitReady(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, p.URL())
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-p.done:
			return fmt.Errorf("server exited: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w (last attempt: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// URL is the connection URL of the "postgres" database as the superuser.
func (p *Postgres) URL() string { return p.DatabaseURL("postgres") }

// DatabaseURL is the connection URL of database name as the superuser.
func (p *Postgres) DatabaseURL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(PostgresSuperuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// PID is the process id of the postmaster.
func (p *Postgres) PID() int { return p.cmd.Process.Pid }

// Port is the TCP port the server listens on (on 127.0.0.1).
func (p *Postgres) Port() int { return p.port }

// Dir is the cluster directory: data directory, server log and unix socket.
func (p *Postgres) Dir() string { return p.dir }

// LinkedFrom is PostgresOptions.Dir when it is a symbolic link to Dir (the
// cluster was kept where the server's user can reach it), else "".
func (p *Postgres) LinkedFrom() string { return p.linked }

// SocketDir is the directory holding the server's unix socket.
func (p *Postgres) SocketDir() string { return p.dir }

// LogPath is the file the server writes its log to.
func (p *Postgres) LogPath() string { return filepath.Join(p.dir, pgLogFile) }

// Stop shuts the server down (fast shutdown: sessions are ended, then the
// server exits cleanly), waiting until it has exited or ctx ends, in which case
// it is killed. A temporary cluster directory is then removed. Stop is safe to
// call more than once.
func (p *Postgres) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-ctx.Done():
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if p.temp {
			if err := os.RemoveAll(p.dir); err != nil {
				p.stopErr = fmt.Errorf("devstack: remove PostgreSQL directory: %w", err)
			}
		}
	})
	return p.stopErr
}

func (p *Postgres) removeDir() {
	if p.temp {
		_ = os.RemoveAll(p.dir)
	}
}

// tailBytes is how much of a log start-up errors quote.
const tailBytes = 4 << 10

func tail(path string) string { return tailFrom(path, 0) }

// tailFrom returns at most the last tailBytes of path from offset from on.
func tailFrom(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(from, fi.Size()-tailBytes)
	buf := make([]byte, fi.Size()-start)
	n, _ := f.ReadAt(buf, start)
	out := bytes.TrimSpace(buf[:n])
	if len(out) == 0 {
		return ""
	}
	return "--- " + filepath.Base(path) + " ---\n" + string(out)
}

func freePort() (int, error) {
	ports, err := freePorts("127.0.0.1", 1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// removeStaleClusters removes temporary cluster directories left behind by
// processes that died without calling Stop (their server got SIGQUIT from the
// kernel when they died). A directory is stale when neither the process that
// created it nor its postmaster is alive.
func removeStaleClusters(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, pgTempPrefix+"*"))
	for _, dir := range dirs {
		owner, err := readPID(filepath.Join(dir, pgOwnerFile))
		if err != nil || alive(owner) {
			continue
		}
		if pm, err := readPID(filepath.Join(dir, pgDataDir, "postmaster.pid")); err == nil && alive(pm) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, errors.New("no pid")
	}
	return pid, nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
