package domain_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestCheckStorableJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, err string
	}{
		{in: `{"order":"123","amount":1999}`},
		{in: `{"note":"tab\tand \u00e9 and \ud83d\ude00 and \\u0000 as text"}`},
		{in: `["\u0001", "é", "😀"]`},
		{in: `{"k":"a\u0000b"}`, err: `\u0000 at byte 7`},
		{in: `{"\u0000":1}`, err: `\u0000 at byte 2`},
		{in: `"\ud800"`, err: `unpaired high surrogate \ud800 at byte 1`},
		{in: `"\ud800\u0041"`, err: "unpaired high surrogate"},
		{in: `"\udc00"`, err: `unpaired low surrogate \udc00`},
		{in: `"\uDBFF\uDFFF"`},
		{in: "\"\xff\"", err: "invalid UTF-8 at byte 1"},
		{in: "\"\xc3\"", err: "invalid UTF-8"},
	} {
		require.True(t, json.Valid([]byte(tc.in)), "encoding/json takes %q", tc.in)
		err := domain.CheckStorableJSON([]byte(tc.in))
		if tc.err == "" {
			require.NoError(t, err, tc.in)
			continue
		}
		require.ErrorIs(t, err, domain.ErrUnstorable, tc.in)
		require.ErrorContains(t, err, tc.err, tc.in)
	}
}

// TestGoEncodesNULAsAnEscape: the SDK's own encoding of a string with a
// NUL byte is what PostgreSQL refuses, so the check must run before publishing.
func TestGoEncodesNULAsAnEscape(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(map[string]string{"k": "a\x00b"})
	require.NoError(t, err)
	require.ErrorIs(t, domain.CheckStorableJSON(b), domain.ErrUnstorable)
}

func TestStorableText(t *testing.T) {
	t.Parallel()
	require.NoError(t, domain.CheckStorableText("upstream timeout: é 😀\t\n"))
	require.ErrorContains(t, domain.CheckStorableText("a\x00b"), "NUL at byte 1")
	require.ErrorContains(t, domain.CheckStorableText("ab\xff"), "invalid UTF-8 at byte 2")
	require.ErrorIs(t, domain.CheckStorableText("\xc3"), domain.ErrUnstorable)

	require.Equal(t, "fine", domain.StorableText("fine"))
	require.Equal(t, "a\uFFFDb\uFFFD", domain.StorableText("a\x00b\xff"))
	require.NoError(t, domain.CheckStorableText(domain.StorableText("x\x00\xc3\x28")))
}
