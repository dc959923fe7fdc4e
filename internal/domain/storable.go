package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CheckStorableJSON reports whether b, which must already be valid JSON,
// can be stored as PostgreSQL jsonb in a UTF-8 database: it refuses, with an
// error wrapping ErrUnstorable that names the byte offset, a \u0000 escape
// (jsonb has no NUL), an unpaired surrogate escape (\ud800 alone, or a low
// surrogate first) and bytes that are not UTF-8. encoding/json accepts all
// three; PostgreSQL refuses them (SQLSTATE 22P05, 22P02, 22021). Text fields
// have their own check (no control characters, valid UTF-8) in the wire
// contract.
func CheckStorableJSON(b []byte) error {
	inString := false
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case !inString:
			inString = c == '"'
			i++
		case c == '"':
			inString = false
			i++
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				return fmt.Errorf("%w: malformed \\u escape at byte %d", ErrUnstorable, i)
			}
			switch {
			case r == 0:
				return fmt.Errorf("%w: \\u0000 at byte %d: PostgreSQL text and jsonb cannot hold NUL", ErrUnstorable, i)
			case r >= 0xD800 && r < 0xDC00:
				if lowSurrogateAt(b, i+6) {
					i += 12
					continue
				}
				return fmt.Errorf("%w: unpaired high surrogate \\u%04x at byte %d", ErrUnstorable, r, i)
			case r >= 0xDC00 && r < 0xE000:
				return fmt.Errorf("%w: unpaired low surrogate \\u%04x at byte %d", ErrUnstorable, r, i)
			}
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrUnstorable, i)
			}
			i += size
		}
	}
	return nil
}

// lowSurrogateAt reports whether b holds a \u escape of a low surrogate at i.
func lowSurrogateAt(b []byte, i int) bool {
	if i+1 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return false
	}
	r, ok := hex4(b, i+2)
	return ok && r >= 0xDC00 && r < 0xE000
}

// hex4 decodes the four hexadecimal digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// CheckStorableText reports whether s can be stored in a PostgreSQL text
// column of a UTF-8 database: no NUL byte and valid UTF-8 (else SQLSTATE
// 22021). The error wraps ErrUnstorable and names the byte offset.
func CheckStorableText(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0 {
			return fmt.Errorf("%w: NUL at byte %d", ErrUnstorable, i)
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrUnstorable, i)
		}
		i += size
	}
	return nil
}

// StorableText returns s with what a PostgreSQL text column cannot hold
// replaced by U+FFFD: NUL bytes and bytes that are not UTF-8. It is for
// free text Baldur records but does not own, such as the error a replay
// handler answered with, which must be kept rather than refused.
func StorableText(s string) string {
	if CheckStorableText(s) == nil {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
