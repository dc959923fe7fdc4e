package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
)

// complete runs the bash completion script on words (the last one the word
// being completed) and returns what it offers.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + w + "'"
	}
	prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		strconv.Itoa(len(words)-1) + "\n_baldur\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	out, err := exec.Command("bash", "--norc", "--noprofile", "-c", prog).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.Fields(string(out))
}

// TestCompletion: the bash script completes nouns, verbs and each command's
// flags; the zsh and fish scripts name every command; an unknown shell is a
// usage error.
func TestCompletion(t *testing.T) {
	t.Parallel()
	r := run(t, "completion", "bash")
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	script := filepath.Join(t.TempDir(), "baldur.bash")
	require.NoError(t, os.WriteFile(script, []byte(r.stdout), 0o600))
	out, err := exec.Command("bash", "-n", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)

	require.Subset(t, complete(t, script, "baldur", ""), []string{"breaker", "dlq", "governance", "audit", "config", "admin", "dev", "version", "completion"})
	require.Equal(t, []string{"breaker"}, complete(t, script, "baldur", "bre"))
	require.Subset(t, complete(t, script, "baldur", "breaker", ""), []string{"list", "get", "watch", "open", "close"})
	require.Equal(t, []string{"--audit-key-file"}, complete(t, script, "baldur", "audit", "verify", "--audit"))
	require.Subset(t, complete(t, script, "baldur", "dlq", "replay-batch", "--"), []string{"--dry-run", "--limit", "--reason", "--nats-url"})
	require.Subset(t, complete(t, script, "baldur", "admin", "--"), []string{"--admin-operators-file", "--admin-token", "--http-addr"})

	for _, sh := range []string{"zsh", "fish"} {
		r := run(t, "completion", sh)
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		for _, word := range []string{"breaker", "replay-batch", "audit-key-file", "admin-operators-file"} {
			require.Contains(t, r.stdout, word, sh)
		}
	}
	r = run(t, "completion", "tcsh")
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, "want bash, zsh, fish")
}
