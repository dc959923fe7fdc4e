package domain

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// AuditGenesisSeq is the sequence number of the first audit record. Its
// PrevHash is empty.
const AuditGenesisSeq int64 = 1

// AuditTimePrecision is the precision audit times are hashed and stored at:
// PostgreSQL's timestamptz keeps microseconds, so a finer instant would not
// survive a round trip through the audit_log table.
const AuditTimePrecision = time.Microsecond

// auditHashDomain separates audit hashes from any other HMAC-SHA256 use and
// lets a future encoding change its version. v1 was plain SHA-256.
const auditHashDomain = "baldur.audit.v2"

// MinAuditKeyLen is the shortest audit key accepted: 32 bytes, the size of
// the HMAC-SHA256 output.
const MinAuditKeyLen = 32

// AuditKey is the secret the audit chain is keyed with. Whoever can write the
// database but does not hold the key cannot re-hash a record it changed: the
// verifier, holding the key, sees the record's hash not match its content.
type AuditKey []byte

// ParseAuditKey returns the key held in b, the content of a key file: white
// space around it is dropped (a trailing newline), and what remains must be
// at least MinAuditKeyLen bytes. The error wraps ErrInvalidAuditKey.
func ParseAuditKey(b []byte) (AuditKey, error) {
	k := bytes.TrimSpace(b)
	if len(k) < MinAuditKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (for example 32 random bytes, base64: head -c 32 /dev/urandom | base64)",
			ErrInvalidAuditKey, len(k), MinAuditKeyLen)
	}
	return AuditKey(bytes.Clone(k)), nil
}

// String hides the key from logs and error messages.
func (k AuditKey) String() string { return fmt.Sprintf("AuditKey(%d bytes)", len(k)) }

// AuditRecord is one row of the audit log: an operator action or a governance
// block, chained to the row before it by PrevHash.
type AuditRecord struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Subject string    `json:"subject,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	// Details is any JSON; it is hashed in canonical form (CanonicalAuditDetails),
	// so the jsonb column may re-format it freely.
	Details  json.RawMessage `json:"details,omitempty"`
	PrevHash []byte          `json:"prev_hash"`
	Hash     []byte          `json:"hash"`
}

// CanonicalAuditDetails returns the canonical form of audit details, the form
// that is hashed. Two inputs that PostgreSQL's jsonb stores as the same value
// have the same canonical form: object keys are sorted (jsonb reorders them),
// insignificant whitespace is dropped (jsonb drops it), a duplicated key keeps
// its last value (as jsonb does), string escapes are decoded (jsonb prints
// "\u00e9" as "é"), and numbers are written as digits and exponent with no
// leading or trailing zeros ("1.0", "1" and "10e-1" are all "1e0"; jsonb keeps
// numbers as numeric, which compares them by value). Empty details, only
// whitespace and JSON null all canonicalize to null, so a NULL column and a
// 'null' jsonb value hash alike. Invalid JSON, or a number whose exponent does
// not fit an int32, is an error wrapping ErrInvalidAuditDetails.
func CanonicalAuditDetails(details json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(details)) == 0 {
		return []byte("null"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(details))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAuditDetails, err)
	}
	if rest := bytes.TrimSpace(details[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%w: trailing data after the JSON value: %s", ErrInvalidAuditDetails, truncate(rest, 32))
	}
	v, err := canonicalNumbers(v)
	if err != nil {
		return nil, err
	}
	// encoding/json writes map keys sorted and no whitespace.
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAuditDetails, err)
	}
	return out, nil
}

func canonicalNumbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s, err := canonicalNumber(string(x))
		if err != nil {
			return nil, err
		}
		return json.Number(s), nil
	case map[string]any:
		for k, e := range x {
			c, err := canonicalNumbers(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	case []any:
		for i, e := range x {
			c, err := canonicalNumbers(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	}
	return v, nil
}

// canonicalNumber rewrites a JSON number literal as [-]<digits>e<exp> where
// digits has no leading or trailing zero, or "0". It is exact: no float
// conversion, so large integers and long decimals keep every digit.
func canonicalNumber(lit string) (string, error) {
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, expPart, hasExp := strings.Cut(strings.ToLower(lit), "e")
	exp := 0
	if hasExp {
		e, err := strconv.ParseInt(expPart, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%w: number %q: exponent out of range", ErrInvalidAuditDetails, lit)
		}
		exp = int(e)
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	exp -= len(frac)
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0", nil
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + strconv.Itoa(exp), nil
}

// ComputeAuditHash returns the record's hash: HMAC-SHA256 keyed with key over a domain tag and a
// length-prefixed encoding of, in order, Seq, At (UTC, truncated to
// AuditTimePrecision, RFC 3339 with nanoseconds), Actor, Action, Subject,
// Reason, the canonical Details and PrevHash. Each field is written as an
// 8-byte big-endian length followed by its bytes, so no two different records
// encode alike. r.Hash is ignored. An empty key is an error wrapping
// ErrInvalidAuditKey; bad details one wrapping ErrInvalidAuditDetails.
func ComputeAuditHash(key AuditKey, r AuditRecord) ([]byte, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("audit record %d: %w: no key", r.Seq, ErrInvalidAuditKey)
	}
	details, err := CanonicalAuditDetails(r.Details)
	if err != nil {
		return nil, fmt.Errorf("audit record %d: %w", r.Seq, err)
	}
	h := hmac.New(sha256.New, key)
	writeAuditField(h, []byte(auditHashDomain))
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], uint64(r.Seq))
	writeAuditField(h, seq[:])
	writeAuditField(h, []byte(auditTime(r.At).Format(time.RFC3339Nano)))
	writeAuditField(h, []byte(r.Actor))
	writeAuditField(h, []byte(r.Action))
	writeAuditField(h, []byte(r.Subject))
	writeAuditField(h, []byte(r.Reason))
	writeAuditField(h, details)
	writeAuditField(h, r.PrevHash)
	return h.Sum(nil), nil
}

func writeAuditField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func auditTime(t time.Time) time.Time { return t.UTC().Truncate(AuditTimePrecision) }

// ChainAuditRecord makes r the record after prev (nil for the first record of
// the log): Seq = prev.Seq + 1 (or AuditGenesisSeq), PrevHash = prev.Hash (or
// empty), At in UTC truncated to AuditTimePrecision (what PostgreSQL will
// store), Details in canonical form, and Hash computed. The writer must hold
// the audit log's append lock from reading prev until the row is committed.
func ChainAuditRecord(key AuditKey, prev *AuditRecord, r AuditRecord) (AuditRecord, error) {
	r.Seq, r.PrevHash = AuditGenesisSeq, []byte{}
	if prev != nil {
		r.Seq, r.PrevHash = prev.Seq+1, bytes.Clone(prev.Hash)
	}
	r.At = auditTime(r.At)
	details, err := CanonicalAuditDetails(r.Details)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("audit record %d: %w", r.Seq, err)
	}
	r.Details = details
	if string(details) == "null" {
		r.Details = nil // stored as SQL NULL; hashes as null either way
	}
	if r.Hash, err = ComputeAuditHash(key, r); err != nil {
		return AuditRecord{}, err
	}
	return r, nil
}

// AuditProblem names how an audit chain is broken.
type AuditProblem string

// Audit chain problems.
const (
	// AuditModified: a record's stored hash does not match its content.
	AuditModified AuditProblem = "modified"
	// AuditGap: a sequence number is missing (a deleted row), or the log does
	// not start at AuditGenesisSeq (deleted head).
	AuditGap AuditProblem = "gap"
	// AuditOutOfOrder: a sequence number is not above the one before it
	// (reordered or duplicated rows).
	AuditOutOfOrder AuditProblem = "out_of_order"
	// AuditBrokenLink: a record's PrevHash is not the hash of the record before
	// it (a row replaced with a re-hashed forgery, or a forged genesis).
	AuditBrokenLink AuditProblem = "broken_link"
	// AuditRewritten: a record's hash is not the one anchored outside the
	// database for its seq (the record and every later one were re-hashed).
	AuditRewritten AuditProblem = "rewritten"
	// AuditCut: the log ends before a seq anchored outside the database (its
	// newest records were deleted).
	AuditCut AuditProblem = "cut"
)

// AuditChainError reports the first place an audit chain is broken. It wraps
// ErrAuditChainBroken.
type AuditChainError struct {
	// Seq is the sequence number of the first bad record.
	Seq     int64
	Problem AuditProblem
	// Detail says what was expected and what was found.
	Detail string
}

// Error implements error.
func (e *AuditChainError) Error() string {
	return fmt.Sprintf("%s at seq %d: %s: %s", ErrAuditChainBroken, e.Seq, e.Problem, e.Detail)
}

// Unwrap returns ErrAuditChainBroken.
func (e *AuditChainError) Unwrap() error { return ErrAuditChainBroken }

// VerifyAuditChain verifies a whole audit log, in the order it is given
// (ascending seq): it must start at AuditGenesisSeq with an empty PrevHash,
// every record's hash must match its content, every seq must be the previous
// seq + 1, and every PrevHash must be the previous record's hash. It returns
// nil, or an *AuditChainError for the first bad record. An empty log is
// valid. To verify a page of a longer log, use VerifyAuditSegment.
//
// A chain alone cannot show that its newest rows were cut off, nor that it was
// re-hashed by someone holding the key: check it against the heads anchored
// outside the database (AuditAnchors) to detect that.
func VerifyAuditChain(key AuditKey, records []AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	first := records[0]
	if err := verifyAuditHash(key, first); err != nil {
		return err
	}
	if first.Seq != AuditGenesisSeq {
		return &AuditChainError{Seq: first.Seq, Problem: AuditGap,
			Detail: fmt.Sprintf("the log starts at seq %d, want %d: its head was deleted", first.Seq, AuditGenesisSeq)}
	}
	if len(first.PrevHash) != 0 {
		return &AuditChainError{Seq: first.Seq, Problem: AuditBrokenLink,
			Detail: fmt.Sprintf("the genesis record links to %s, want an empty prev_hash", shortHash(first.PrevHash))}
	}
	return verifyAuditLinks(key, first, records[1:])
}

// VerifyAuditSegment verifies records as the continuation of anchor, a record
// already trusted (verified earlier, or kept outside the database): the first
// record must be anchor.Seq + 1 and link to anchor.Hash, and the rest as in
// VerifyAuditChain.
func VerifyAuditSegment(key AuditKey, anchor AuditRecord, records []AuditRecord) error {
	return verifyAuditLinks(key, anchor, records)
}

func verifyAuditLinks(key AuditKey, prev AuditRecord, records []AuditRecord) error {
	for _, r := range records {
		if err := verifyAuditHash(key, r); err != nil {
			return err
		}
		switch {
		case r.Seq <= prev.Seq:
			return &AuditChainError{Seq: r.Seq, Problem: AuditOutOfOrder,
				Detail: fmt.Sprintf("follows seq %d", prev.Seq)}
		case r.Seq != prev.Seq+1:
			missing := strconv.FormatInt(prev.Seq+1, 10)
			if r.Seq-1 > prev.Seq+1 {
				missing += ".." + strconv.FormatInt(r.Seq-1, 10)
			}
			return &AuditChainError{Seq: r.Seq, Problem: AuditGap,
				Detail: fmt.Sprintf("follows seq %d: seq %s missing (deleted)", prev.Seq, missing)}
		case !bytes.Equal(r.PrevHash, prev.Hash):
			return &AuditChainError{Seq: r.Seq, Problem: AuditBrokenLink,
				Detail: fmt.Sprintf("prev_hash %s is not the hash %s of seq %d", shortHash(r.PrevHash), shortHash(prev.Hash), prev.Seq)}
		}
		prev = r
	}
	return nil
}

func verifyAuditHash(key AuditKey, r AuditRecord) error {
	want, err := ComputeAuditHash(key, r)
	if err != nil {
		return &AuditChainError{Seq: r.Seq, Problem: AuditModified, Detail: err.Error()}
	}
	if !bytes.Equal(want, r.Hash) {
		return &AuditChainError{Seq: r.Seq, Problem: AuditModified,
			Detail: fmt.Sprintf("stored hash %s does not match the content's hash %s", shortHash(r.Hash), shortHash(want))}
	}
	return nil
}

func shortHash(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// AuditHead is the seq and hash of an audit record as anchored outside the
// database: every writer publishes the head of the log each time it appends.
type AuditHead struct {
	Seq  int64
	Hash []byte
}

// AuditAnchors is the set of heads anchored outside the database, against
// which a log read from the database is checked: every record whose seq was
// anchored must hold the anchored hash, and the log must reach the highest
// anchored seq. Anchors only add evidence: a head anchored again (a writer
// re-publishing the log's head at start) never hides an older one. The zero
// value holds no anchor.
type AuditAnchors struct {
	bySeq map[int64][][]byte
	max   int64
	n     int
}

// Add records h; a head without a hash or below AuditGenesisSeq is ignored.
func (a *AuditAnchors) Add(h AuditHead) {
	if h.Seq < AuditGenesisSeq || len(h.Hash) == 0 {
		return
	}
	if a.bySeq == nil {
		a.bySeq = map[int64][][]byte{}
	}
	for _, have := range a.bySeq[h.Seq] {
		if bytes.Equal(have, h.Hash) {
			return
		}
	}
	a.bySeq[h.Seq] = append(a.bySeq[h.Seq], bytes.Clone(h.Hash))
	a.max = max(a.max, h.Seq)
	a.n++
}

// Len is the number of distinct heads held.
func (a *AuditAnchors) Len() int { return a.n }

// MaxSeq is the highest anchored seq, 0 when none is held.
func (a *AuditAnchors) MaxSeq() int64 { return a.max }

// Check returns an *AuditChainError (AuditRewritten) when r's seq was
// anchored with another hash than r's.
func (a *AuditAnchors) Check(r AuditRecord) error {
	for _, h := range a.bySeq[r.Seq] {
		if !bytes.Equal(h, r.Hash) {
			return &AuditChainError{Seq: r.Seq, Problem: AuditRewritten,
				Detail: fmt.Sprintf("the log holds hash %s but %s was anchored for this seq: the record was rewritten and the log re-hashed from it", shortHash(r.Hash), shortHash(h))}
		}
	}
	return nil
}

// CheckEnd returns an *AuditChainError (AuditCut) when a log whose last seq is
// last (0 for an empty log) stops before the highest anchored seq.
func (a *AuditAnchors) CheckEnd(last int64) error {
	if a.max <= last {
		return nil
	}
	missing := strconv.FormatInt(last+1, 10)
	if a.max > last+1 {
		missing += ".." + strconv.FormatInt(a.max, 10)
	}
	return &AuditChainError{Seq: last + 1, Problem: AuditCut,
		Detail: fmt.Sprintf("the log ends at seq %d but seq %d was anchored: seq %s deleted", last, a.max, missing)}
}
