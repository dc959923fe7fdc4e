package scripts

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// setup runs scripts/setup (the copy at script) with args and env added to
// a PATH that has go, and returns its exit code and output.
func setup(t *testing.T, script string, cred *syscall.Credential, env []string, args ...string) (int, string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append([]string{"PATH=" + filepath.Dir(goBin) + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &exit, "run %s: %s", script, out.String())
		return exit.ExitCode(), out.String()
	}
	return 0, out.String()
}

// missingPostgres makes the script find no PostgreSQL server binaries.
var missingPostgres = []string{"BALDUR_PG_BIN_DIR=/nonexistent"}

func TestSetupCheck(t *testing.T) {
	t.Parallel()
	code, out := setup(t, "setup", nil, []string{"BALDUR_DATABASE_URL=postgres://elsewhere/x"}, "run", "--check")
	require.Equal(t, 0, code, out)
	require.Empty(t, out, "nothing missing, nothing said")

	code, out = setup(t, "setup", nil, missingPostgres, "run", "--check")
	require.Equal(t, 1, code, out)
	require.Equal(t, "setup: missing postgresql (make run installs them)\n", out)

	code, out = setup(t, "setup", nil, append(missingPostgres, "BALDUR_DATABASE_URL=postgres://elsewhere/x"), "run", "--check")
	require.Equal(t, 0, code, "a database URL needs no local server: %s", out)

	code, out = setup(t, "setup", nil, nil, "deploy")
	require.Equal(t, 2, code)
	require.Contains(t, out, "usage: scripts/setup run|test [--check]")
}

// TestSetupWithoutRightsNamesTheCommand: a user who may not install stops
// before anything runs, with one line naming the command to run.
func TestSetupWithoutRightsNamesTheCommand(t *testing.T) {
	t.Parallel()
	script, cred := "setup", (*syscall.Credential)(nil)
	if os.Geteuid() == 0 {
		// Run as nobody, from a copy that user can read.
		u, err := user.Lookup("nobody")
		require.NoError(t, err)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		dir, err := os.MkdirTemp("", "baldur-setup-")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		require.NoError(t, os.Chmod(dir, 0o755))
		body, err := os.ReadFile("setup")
		require.NoError(t, err)
		script = filepath.Join(dir, "setup")
		require.NoError(t, os.WriteFile(script, body, 0o755))
	} else if exec.Command("sudo", "-n", "true").Run() == nil {
		t.Skip("this user may sudo without a password, so setup would install; CI runs this test as root")
	}
	code, out := setup(t, script, cred, missingPostgres, "run")
	require.Equal(t, 1, code, out)
	require.Equal(t, "setup: missing postgresql: install them with 'sudo apt-get install -y postgresql' (or as root), "+
		"then run make run again\n", out)
	require.Equal(t, 1, strings.Count(out, "\n"), "one line")
}
