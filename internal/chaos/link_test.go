//go:build chaos

package chaos

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePub(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line    string
		subject string
		size    int
		isPub   bool
		bad     bool
	}{
		{line: "PUB foo 5\r\n", subject: "foo", size: 5, isPub: true},
		{line: "PUB foo _INBOX.x 12\r\n", subject: "foo", size: 12, isPub: true},
		{line: "HPUB $KV.baldur_breakers.a _INBOX.y 22 40\r\n", subject: "$KV.baldur_breakers.a", size: 40, isPub: true},
		{line: "hpub a 1 2\r\n", subject: "a", size: 2, isPub: true},
		{line: "SUB foo 1\r\n"},
		{line: "PING\r\n"},
		{line: "CONNECT {\"verbose\":false}\r\n"},
		{line: "\r\n"},
		{line: "PUB foo\r\n", bad: true},
		{line: "PUB foo bar baz 3\r\n", bad: true},
		{line: "PUB foo x\r\n", bad: true},
		{line: "HPUB foo 1 -2\r\n", bad: true},
	} {
		subject, size, isPub, err := parsePub([]byte(tc.line))
		if tc.bad {
			require.Error(t, err, tc.line)
			continue
		}
		require.NoError(t, err, tc.line)
		require.Equal(t, tc.isPub, isPub, tc.line)
		require.Equal(t, tc.subject, subject, tc.line)
		require.Equal(t, tc.size, size, tc.line)
	}
}
