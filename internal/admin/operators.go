package admin

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/baldurfleet/baldur/internal/events"
)

// MinTokenLen is the shortest admin token accepted, in bytes.
const MinTokenLen = 16

// OperatorToken is a person (or role) with a token of their own: their writes are
// recorded with Name as the actor, whatever the request says.
type OperatorToken struct {
	// Name is the actor the writes made with Token are recorded as.
	Name string
	// Token is the operator's bearer token.
	Token string
}

// ParseOperatorTokens reads an operators file: one "name:token" per line; blank
// lines and lines starting with "#" are skipped. A name is a valid actor
// (1..128 bytes, no control characters, no ':'); a token has at least
// MinTokenLen bytes and no white space; no name or token may appear twice.
// Errors name the line, never a token.
func ParseOperatorTokens(b []byte) ([]OperatorToken, error) {
	var out []OperatorToken
	names, tokens := map[string]int{}, map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tok, ok := strings.Cut(line, ":")
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: operators file line %d: want name:token", ErrConfig, n)
		case name == "" || len(name) > events.MaxActorLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return nil, fmt.Errorf("%w: operators file line %d: the name must be 1 to %d bytes without control characters", ErrConfig, n, events.MaxActorLen)
		case len(tok) < MinTokenLen || strings.ContainsAny(tok, " \t"):
			return nil, fmt.Errorf("%w: operators file line %d (%s): the token must be at least %d bytes without white space", ErrConfig, n, name, MinTokenLen)
		case names[name] > 0:
			return nil, fmt.Errorf("%w: operators file line %d: %s is also on line %d", ErrConfig, n, name, names[name])
		case tokens[tok] > 0:
			return nil, fmt.Errorf("%w: operators file line %d (%s): the same token as line %d", ErrConfig, n, name, tokens[tok])
		}
		names[name], tokens[tok] = n, n
		out = append(out, OperatorToken{Name: name, Token: tok})
	}
	return out, sc.Err()
}

// caller is who a request's bearer token says it is: a named operator, or
// the holder of the shared AdminToken (named false).
type caller struct {
	name  string
	named bool
}

// authorize returns the caller of r's bearer token, and false when it
// carries no token the server knows. Every token is compared in constant
// time.
func (s *Server) authorize(r *http.Request) (caller, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, false
	}
	tok = strings.TrimSpace(tok)
	var who caller
	found := false
	if s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) == 1 {
		who, found = caller{}, true
	}
	for _, op := range s.cfg.Operators {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(op.Token)) == 1 {
			who, found = caller{name: op.Name, named: true}, true
		}
	}
	return who, found
}

// tokens reports whether the server has any token at all.
func (s *Server) tokens() bool { return s.cfg.AdminToken != "" || len(s.cfg.Operators) > 0 }
