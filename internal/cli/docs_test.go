package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
)

// helpLine is a command line of `baldur help`: the noun, then its verbs
// joined by "|" (none for a command without verbs), then the summary.
var helpLine = regexp.MustCompile(`(?m)^  ([a-z]+) {2,}([a-z|-]+ {2,})?\S`)

// TestCLIDocNamesEveryCommand keeps docs/cli.md (docs/dev.md for `dev`)
// naming every command the CLI has: as "baldur NOUN VERB" or as a row of a
// verb table ("| `VERB` |").
func TestCLIDocNamesEveryCommand(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/cli.md")
	require.NoError(t, err)
	doc := string(raw)
	r := run(t, "help")
	require.Equal(t, cli.ExitOK, r.code)
	matches := helpLine.FindAllStringSubmatch(r.stdout, -1)
	require.NotEmpty(t, matches, r.stdout)
	seen := 0
	for _, m := range matches {
		noun, verbs := m[1], strings.TrimSpace(m[2])
		if noun == "dev" {
			dev, err := os.ReadFile("../../docs/dev.md")
			require.NoError(t, err)
			require.Contains(t, string(dev), "baldur dev")
			continue
		}
		if verbs == "" {
			require.True(t, strings.Contains(doc, "baldur "+noun), "docs/cli.md does not name baldur %s", noun)
			seen++
			continue
		}
		for v := range strings.SplitSeq(verbs, "|") {
			named := regexp.MustCompile(`baldur `+noun+` ([a-z-]+\|)*`+regexp.QuoteMeta(v)+`\b`).MatchString(doc) ||
				strings.Contains(doc, "| `"+v+"` |")
			require.True(t, named, "docs/cli.md does not name baldur %s %s", noun, v)
			seen++
		}
	}
	require.Greater(t, seen, 20, "every command was checked")
	for _, c := range []string{"baldur config list", "baldur config delete", "baldur version", "baldur --version"} {
		require.True(t, strings.Contains(doc, c), "docs/cli.md names %s", c)
	}
}
