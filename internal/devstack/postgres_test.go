package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary act as a process that starts PostgreSQL and
// then waits to be killed (see TestPostgresDiesWithParent).
const helperEnv = "BALDUR_DEVSTACK_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "postgres" {
		p, err := StartPostgres(context.Background(), PostgresOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s %d\n", p.Dir(), p.PID())
		select {} // until killed
	}
	os.Exit(m.Run())
}

// fakeBin makes dir/name an executable (or not) file.
func fakeBin(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), mode))
	return p
}

func TestFindPostgres(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	override := filepath.Join(root, "override")
	fakeBin(t, override, "initdb", 0o755)
	fakeBin(t, override, "postgres", 0o755)
	notExec := filepath.Join(root, "notexec")
	fakeBin(t, notExec, "initdb", 0o755)
	fakeBin(t, notExec, "postgres", 0o644)
	onPath := filepath.Join(root, "path")
	fakeBin(t, onPath, "initdb", 0o755)
	fakeBin(t, onPath, "postgres", 0o755)

	debian := filepath.Join(root, "debian")
	for _, v := range []string{"9.6", "15"} {
		fakeBin(t, filepath.Join(debian, v, "bin"), "initdb", 0o755)
		fakeBin(t, filepath.Join(debian, v, "bin"), "postgres", 0o755)
	}
	fakeBin(t, filepath.Join(debian, "16", "bin"), "initdb", 0o755) // incomplete: skipped
	require.NoError(t, os.MkdirAll(filepath.Join(debian, "common", "bin"), 0o755))

	pathLookup := func(name string) (string, error) { return filepath.Join(onPath, name), nil }
	noPath := func(name string) (string, error) { return "", exec.ErrNotFound }

	for _, tc := range []struct {
		name     string
		binDir   string
		lookPath func(string) (string, error)
		debian   string
		wantDir  string
		wantErr  string
	}{
		{name: "override wins over PATH", binDir: override, lookPath: pathLookup, debian: debian, wantDir: override},
		{name: "override without binaries", binDir: filepath.Join(root, "missing"), lookPath: pathLookup, debian: debian,
			wantErr: "BALDUR_PG_BIN_DIR"},
		{name: "override not executable", binDir: notExec, lookPath: pathLookup, debian: debian, wantErr: "not an executable"},
		{name: "PATH before Debian layout", lookPath: pathLookup, debian: debian, wantDir: onPath},
		{name: "highest complete Debian version", lookPath: noPath, debian: debian, wantDir: filepath.Join(debian, "15", "bin")},
		{name: "nothing", lookPath: noPath, debian: filepath.Join(root, "none"), wantErr: "apt-get install -y postgresql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := findPostgres(tc.binDir, tc.lookPath, tc.debian)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrNoPostgres)
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "BALDUR_TEST_DATABASE_URL")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantDir, got.Dir)
			require.Equal(t, filepath.Join(tc.wantDir, "initdb"), got.Initdb)
			require.Equal(t, filepath.Join(tc.wantDir, "postgres"), got.Postgres)
		})
	}
}

func TestFindPostgresOnThisMachine(t *testing.T) {
	t.Parallel()
	b, err := FindPostgres()
	require.NoError(t, err, "the tests of this repository need PostgreSQL")
	t.Logf("PostgreSQL binaries in %s", b.Dir)
}

func TestTraversable(t *testing.T) {
	t.Parallel()
	other := &syscall.Credential{Uid: 54321, Gid: 54321}
	for _, tc := range []struct {
		mode os.FileMode
		want bool
	}{
		{mode: 0o700, want: false},
		{mode: 0o750, want: false},
		{mode: 0o711, want: true},
		{mode: 0o755, want: true},
	} {
		dir := filepath.Join(t.TempDir(), "d")
		require.NoError(t, os.Mkdir(dir, tc.mode))
		require.NoError(t, os.Chmod(dir, tc.mode)) // umask
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, tc.want, traversable(fi, other), "mode %v", tc.mode)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]int{"15": {15}, "9.6": {9, 6}, "common": nil, "": nil} {
		got, ok := parseVersion(in)
		require.Equal(t, want != nil, ok, in)
		require.Equal(t, want, got, in)
	}
}

// TestPostgresKeepsDir starts a cluster in a given directory twice (as
// `baldur dev` does): the second start skips initdb and finds the data.
func TestPostgresKeepsDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(reachableTempDir(t), "cluster")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	begin := time.Now()
	p, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Durable: true})
	require.NoError(t, err)
	t.Logf("initdb and start in %s", time.Since(begin))
	exec1(ctx, t, p.URL(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')`)
	require.NoError(t, p.Stop(ctx))
	require.NoError(t, p.Stop(ctx), "Stop twice")
	require.DirExists(t, filepath.Join(dir, "data"), "a given directory is kept")

	begin = time.Now()
	p, err = StartPostgres(ctx, PostgresOptions{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	t.Logf("restart in %s", time.Since(begin))
	conn, err := pgx.Connect(ctx, p.URL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v string
	require.NoError(t, conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v))
	require.Equal(t, "still here", v)
}

// TestPostgresFromAPrivateDirectory keeps a cluster asked for inside a 0700
// directory, as `make run` does in a clone under root's home. As root the
// server's user cannot enter it: the cluster is kept under the fallback, the
// asked-for directory links to it, a restart finds the data, and deleting the
// data directory starts over. As a normal user it stays where it was asked.
func TestPostgresFromAPrivateDirectory(t *testing.T) {
	t.Parallel()
	private := t.TempDir()
	require.NoError(t, os.Chmod(private, 0o700))
	dataDir := filepath.Join(private, "clone", ".baldur")
	dir := filepath.Join(dataDir, "pg")
	fallback := filepath.Join(reachableTempDir(t), "fallback")
	opts := PostgresOptions{Dir: dir, Fallback: fallback, Durable: true}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	start := func() *Postgres {
		t.Helper()
		p, err := StartPostgres(ctx, opts)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Stop(context.Background()) })
		return p
	}
	kept := func(p *Postgres) bool {
		t.Helper()
		conn, err := pgx.Connect(ctx, p.URL())
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'kept'`).Scan(&n))
		return n == 1
	}

	p := start()
	if os.Geteuid() == 0 {
		require.Equal(t, dir, p.LinkedFrom())
		require.Equal(t, fallback, filepath.Dir(p.Dir()), "kept under the fallback")
		target, err := os.Readlink(dir)
		require.NoError(t, err, "the asked-for directory is a link")
		require.Equal(t, p.Dir(), target)
	} else {
		require.Equal(t, dir, p.Dir(), "a normal user's server reaches its own directories")
		require.Empty(t, p.LinkedFrom())
	}
	first := p.Dir()
	exec1(ctx, t, p.URL(), `CREATE TABLE kept (v text)`)
	require.NoError(t, p.Stop(ctx))

	p = start()
	require.Equal(t, first, p.Dir(), "the same cluster on every start")
	require.True(t, kept(p), "a restart finds the data")
	require.NoError(t, p.Stop(ctx))

	require.NoError(t, os.RemoveAll(dataDir), "delete the data directory to start over")
	p = start()
	require.Equal(t, first, p.Dir())
	require.False(t, kept(p), "a deleted data directory starts over")
	require.NoError(t, p.Stop(ctx))

	if os.Geteuid() == 0 {
		// A link whose cluster was removed by hand: a new cluster takes its place.
		require.NoError(t, os.RemoveAll(first))
		p = start()
		require.Equal(t, first, p.Dir())
		require.NoError(t, p.Stop(ctx))

		// Data in the private directory itself is never moved or overwritten.
		other := filepath.Join(private, "other", "pg")
		require.NoError(t, os.MkdirAll(other, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(other, "PG_VERSION"), []byte("15\n"), 0o644))
		_, err := StartPostgres(ctx, PostgresOptions{Dir: other, Fallback: fallback})
		require.ErrorContains(t, err, "mv "+other+" "+other+".old")
		require.FileExists(t, filepath.Join(other, "PG_VERSION"))

		// A fallback the postgres user cannot reach either: the one command.
		_, err = StartPostgres(ctx, PostgresOptions{Dir: filepath.Join(private, "third", "pg"), Fallback: filepath.Join(private, "fb")})
		require.ErrorContains(t, err, "chmod o+x "+private)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	other := &syscall.Credential{Uid: 54321, Gid: 54321}
	root := reachableTempDir(t)
	closed := filepath.Join(root, "closed")
	require.NoError(t, os.Mkdir(closed, 0o700))
	require.NoError(t, os.Chmod(closed, 0o700)) // umask
	open := filepath.Join(root, "open")
	require.NoError(t, os.Mkdir(open, 0o755))
	require.NoError(t, os.Chmod(open, 0o755))

	for _, tc := range []struct {
		dir, want string
	}{
		{dir: filepath.Join(open, "pg"), want: ""},
		{dir: filepath.Join(open, "not", "yet", "pg"), want: ""},
		{dir: filepath.Join(closed, "clone", ".baldur", "pg"), want: closed},
		{dir: filepath.Join(closed, "pg"), want: closed},
	} {
		mode, got := unreachable(tc.dir, other)
		require.Equal(t, tc.want, got, tc.dir)
		if got != "" {
			require.Equal(t, os.FileMode(0o700), mode)
		}
		_, got = unreachable(tc.dir, nil)
		require.Empty(t, got, "without a credential we run the server ourselves")
	}
}

func TestPostgresTemporaryDirRemoved(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx, PostgresOptions{MaxConnections: 20, Settings: map[string]string{"application_name": "x"}})
	require.NoError(t, err)
	require.DirExists(t, p.Dir())
	exec1(ctx, t, p.DatabaseURL("postgres"), `SELECT 1`)
	require.NoError(t, p.Stop(ctx))
	require.NoDirExists(t, p.Dir())
}

// TestPostgresPortInUse shows that a start-up failure names the problem and
// quotes the server log.
func TestPostgresPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = StartPostgres(ctx, PostgresOptions{Port: l.Addr().(*net.TCPAddr).Port})
	require.ErrorIs(t, err, ErrPostgresStart)
	require.ErrorContains(t, err, "postgres.log")
	require.ErrorContains(t, err, "could not bind")
}

// TestPostgresDiesWithParent kills a process that started PostgreSQL: the
// server goes too, and the next start removes its directory.
func TestPostgresDiesWithParent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=postgres")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "helper reports its cluster")
	var (
		dir string
		pid int
	)
	_, err = fmt.Sscanf(line, "%s %d", &dir, &pid)
	require.NoError(t, err)
	require.DirExists(t, dir)
	require.True(t, alive(pid))

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return !alive(pid) || zombie(pid) }, 30*time.Second, 20*time.Millisecond,
		"postmaster %d outlived its parent", pid)

	removeStaleClusters(filepath.Dir(dir))
	require.NoDirExists(t, dir)
}

// zombie reports whether pid has exited but not been reaped (its parent, the
// killed helper, was reparented to an init that may reap late).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2] == 'Z'
		}
	}
	return false
}

func exec1(ctx context.Context, t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// reachableTempDir is a temporary directory the postgres OS user can reach
// when the tests run as root (t.TempDir's parents are private to root).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "baldur-devstack-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
