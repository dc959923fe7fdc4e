package domain_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

var auditT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey is the key the tests chain with.
var testKey = domain.AuditKey("0123456789abcdef0123456789abcdef")

// auditLog builds a valid chain of n records.
func auditLog(t *testing.T, n int) []domain.AuditRecord {
	t.Helper()
	var out []domain.AuditRecord
	var prev *domain.AuditRecord
	for i := range n {
		r, err := domain.ChainAuditRecord(testKey, prev, domain.AuditRecord{
			At:      auditT0.Add(time.Duration(i) * time.Minute),
			Actor:   "oncall",
			Action:  "breaker.open",
			Subject: fmt.Sprintf("svc-%d", i),
			Reason:  "vendor maintenance",
			Details: json.RawMessage(fmt.Sprintf(`{"ttl": "30m", "n": %d}`, i)),
		})
		require.NoError(t, err)
		out = append(out, r)
		prev = &out[len(out)-1]
	}
	return out
}

func TestChainAuditRecord_BuildsAValidChain(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 5)
	require.NoError(t, domain.VerifyAuditChain(testKey, log))
	require.Equal(t, domain.AuditGenesisSeq, log[0].Seq)
	require.Empty(t, log[0].PrevHash)
	for i := 1; i < len(log); i++ {
		require.Equal(t, log[i-1].Seq+1, log[i].Seq)
		require.Equal(t, log[i-1].Hash, log[i].PrevHash)
		require.Len(t, log[i].Hash, 32)
	}
	require.JSONEq(t, `{"n": 0, "ttl": "30m"}`, string(log[0].Details))
	require.NoError(t, domain.VerifyAuditChain(testKey, nil), "an empty log is valid")
}

func TestChainAuditRecord_DoesNotAliasPrevHash(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 2)
	log[0].Hash[0] ^= 0xff
	require.NotEqual(t, log[0].Hash, log[1].PrevHash)
}

func TestVerifyAuditChain_DetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tamper  func([]domain.AuditRecord) []domain.AuditRecord
		seq     int64
		problem domain.AuditProblem
	}{
		{"modified actor", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[2].Actor = "mallory"
			return l
		}, 3, domain.AuditModified},
		{"modified action", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[0].Action = "breaker.close"
			return l
		}, 1, domain.AuditModified},
		{"modified subject", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[4].Subject = "other"
			return l
		}, 5, domain.AuditModified},
		{"modified reason", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[1].Reason = ""
			return l
		}, 2, domain.AuditModified},
		{"modified time", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[3].At = l[3].At.Add(time.Microsecond)
			return l
		}, 4, domain.AuditModified},
		{"modified details", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[3].Details = json.RawMessage(`{"ttl": "90m", "n": 3}`)
			return l
		}, 4, domain.AuditModified},
		{"details removed", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[3].Details = nil
			return l
		}, 4, domain.AuditModified},
		{"modified seq", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[3].Seq = 40
			return l
		}, 40, domain.AuditModified},
		{"modified hash", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[2].Hash[5] ^= 1
			return l
		}, 3, domain.AuditModified},
		{"deleted row", func(l []domain.AuditRecord) []domain.AuditRecord {
			return slices.Delete(l, 2, 3)
		}, 4, domain.AuditGap},
		{"deleted head", func(l []domain.AuditRecord) []domain.AuditRecord {
			return l[1:]
		}, 2, domain.AuditGap},
		{"swapped rows", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[1], l[2] = l[2], l[1]
			return l
		}, 3, domain.AuditGap},
		{"duplicated row", func(l []domain.AuditRecord) []domain.AuditRecord {
			return slices.Insert(l, 2, l[1])
		}, 2, domain.AuditOutOfOrder},
		{"row replaced by a re-hashed forgery", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[2].Reason = "nothing to see"
			h, err := domain.ComputeAuditHash(testKey, l[2])
			if err != nil {
				panic(err)
			}
			l[2].Hash = h
			return l
		}, 4, domain.AuditBrokenLink},
		{"forged genesis linking elsewhere", func(l []domain.AuditRecord) []domain.AuditRecord {
			l[0].PrevHash = []byte{1, 2, 3}
			h, err := domain.ComputeAuditHash(testKey, l[0])
			if err != nil {
				panic(err)
			}
			l[0].Hash = h
			return l[:1]
		}, 1, domain.AuditBrokenLink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := tt.tamper(auditLog(t, 5))
			err := domain.VerifyAuditChain(testKey, log)
			require.ErrorIs(t, err, domain.ErrAuditChainBroken)
			var chainErr *domain.AuditChainError
			require.True(t, errors.As(err, &chainErr))
			require.Equal(t, tt.seq, chainErr.Seq, err.Error())
			require.Equal(t, tt.problem, chainErr.Problem, err.Error())
			require.ErrorContains(t, err, fmt.Sprintf("seq %d: %s", tt.seq, tt.problem))
		})
	}
}

func TestVerifyAuditChain_GapMessageNamesMissingSeqs(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 6)
	err := domain.VerifyAuditChain(testKey, slices.Delete(log, 1, 4))
	require.ErrorContains(t, err, "seq 2..4 missing")
	log = auditLog(t, 3)
	err = domain.VerifyAuditChain(testKey, slices.Delete(log, 1, 2))
	require.ErrorContains(t, err, "seq 2 missing")
}

func TestVerifyAuditSegment_FromATrustedAnchor(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 6)
	require.NoError(t, domain.VerifyAuditSegment(testKey, log[2], log[3:]))
	require.NoError(t, domain.VerifyAuditSegment(testKey, log[5], nil))

	err := domain.VerifyAuditSegment(testKey, log[1], log[3:])
	var chainErr *domain.AuditChainError
	require.True(t, errors.As(err, &chainErr))
	require.Equal(t, domain.AuditGap, chainErr.Problem)

	// The page on its own is not a whole log: its head is missing.
	require.ErrorIs(t, domain.VerifyAuditChain(testKey, log[3:]), domain.ErrAuditChainBroken)
}

// TestAuditHash_SurvivesJSONBReformatting feeds the hash the details exactly as
// PostgreSQL 15 prints them back from a jsonb column (captured from psql):
// keys reordered (shorter first), whitespace normalized, duplicate keys
// collapsed to the last, escapes decoded, numbers re-spelled.
func TestAuditHash_SurvivesJSONBReformatting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		written, read string
	}{
		{"keys reordered and spaces added",
			`{"bb":1,"a":2,"aaa":3,"b":4}`, `{"a": 2, "b": 4, "bb": 1, "aaa": 3}`},
		{"whitespace dropped",
			"{\n  \"zeta\" :\t1,\n  \"a\" : {\"bb\" : [1,2.50,1e2]}\n}", `{"a": {"bb": [1, 2.50, 100]}, "zeta": 1}`},
		{"duplicate key keeps the last value",
			`{"a": "first", "zeta": 1, "a": "dup"}`, `{"a": "dup", "zeta": 1}`},
		{"escapes decoded",
			`{"\u00e9": "\u00e9\n", "s": "\u0041\/"}`, `{"s": "A/", "é": "é\n"}`},
		{"numbers re-spelled",
			`[1, 2.50, 1e2, -0, 0.0, 1E-2, -1.5e+3, 10e-1]`, `[1, 2.50, 100, 0, 0.0, 0.01, -1500, 1.0]`},
		{"big numbers keep every digit",
			`12345678901234567890123.4500`, `12345678901234567890123.4500`},
		{"NULL column and null value", `null`, ``},
		{"nil details and JSON null", ``, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec, err := domain.ChainAuditRecord(testKey, nil, domain.AuditRecord{At: auditT0, Actor: "a", Action: "x",
				Details: json.RawMessage(tt.written)})
			require.NoError(t, err)
			stored := rec
			stored.Details = json.RawMessage(tt.read)
			require.NoError(t, domain.VerifyAuditChain(testKey, []domain.AuditRecord{stored}))

			w, err := domain.CanonicalAuditDetails(json.RawMessage(tt.written))
			require.NoError(t, err)
			r, err := domain.CanonicalAuditDetails(json.RawMessage(tt.read))
			require.NoError(t, err)
			require.Equal(t, string(w), string(r))
		})
	}
}

func TestCanonicalAuditDetails(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{``, `null`},
		{"  \n", `null`},
		{`null`, `null`},
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`{"b": [true, false, null], "a": "x"}`, `{"a":"x","b":[true,false,null]}`},
		{`1`, `1e0`},
		{`1.0`, `1e0`},
		{`10e-1`, `1e0`},
		{`100`, `1e2`},
		{`0.00`, `0`},
		{`-0`, `0`},
		{`-0.0e5`, `0`},
		{`-1.50`, `-15e-1`},
		{`0.001`, `1e-3`},
		{`1.5E+3`, `15e2`},
		{`9007199254740993`, `9007199254740993e0`},
		{`{"a": {"c": 1, "b": 2}}`, `{"a":{"b":2e0,"c":1e0}}`},
	}
	for _, tt := range tests {
		got, err := domain.CanonicalAuditDetails(json.RawMessage(tt.in))
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, string(got), tt.in)
	}
}

func TestCanonicalAuditDetails_Refuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{`, `{"a":1}}`, `{"a":1} {"b":2}`, `nope`, `1e99999999999`, `[1, 2,]`} {
		_, err := domain.CanonicalAuditDetails(json.RawMessage(in))
		require.ErrorIs(t, err, domain.ErrInvalidAuditDetails, in)

		_, err = domain.ComputeAuditHash(testKey, domain.AuditRecord{Seq: 9, Details: json.RawMessage(in)})
		require.ErrorIs(t, err, domain.ErrInvalidAuditDetails, in)
		require.ErrorContains(t, err, "audit record 9")

		_, err = domain.ChainAuditRecord(testKey, nil, domain.AuditRecord{Details: json.RawMessage(in)})
		require.ErrorIs(t, err, domain.ErrInvalidAuditDetails, in)
	}
	err := domain.VerifyAuditChain(testKey, []domain.AuditRecord{{Seq: 1, Details: json.RawMessage(`{`)}})
	var chainErr *domain.AuditChainError
	require.True(t, errors.As(err, &chainErr))
	require.Equal(t, domain.AuditModified, chainErr.Problem)
}

func TestComputeAuditHash_TimeIsCanonical(t *testing.T) {
	t.Parallel()
	base := domain.AuditRecord{Seq: 1, At: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC), Actor: "a", Action: "x"}
	want, err := domain.ComputeAuditHash(testKey, base)
	require.NoError(t, err)

	// What PostgreSQL gives back: microseconds, in another zone.
	readBack := base
	readBack.At = time.Date(2025, 3, 1, 13, 0, 0, 123456000, time.FixedZone("CET", 3600))
	got, err := domain.ComputeAuditHash(testKey, readBack)
	require.NoError(t, err)
	require.Equal(t, want, got)

	rec, err := domain.ChainAuditRecord(testKey, nil, base)
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC), rec.At, "stored as PostgreSQL keeps it")
}

func TestComputeAuditHash_FieldBoundariesMatter(t *testing.T) {
	t.Parallel()
	a := domain.AuditRecord{Seq: 1, At: auditT0, Actor: "ab", Action: "c"}
	b := domain.AuditRecord{Seq: 1, At: auditT0, Actor: "a", Action: "bc"}
	c := domain.AuditRecord{Seq: 1, At: auditT0, Actor: "ab", Action: "", Subject: "c"}
	ha, err := domain.ComputeAuditHash(testKey, a)
	require.NoError(t, err)
	hb, err := domain.ComputeAuditHash(testKey, b)
	require.NoError(t, err)
	hc, err := domain.ComputeAuditHash(testKey, c)
	require.NoError(t, err)
	require.NotEqual(t, ha, hb)
	require.NotEqual(t, ha, hc)
	require.NotEqual(t, hb, hc)

	a.Hash = []byte("ignored")
	again, err := domain.ComputeAuditHash(testKey, a)
	require.NoError(t, err)
	require.Equal(t, ha, again, "the stored hash is not part of the hash")
}

// TestComputeAuditHash_Golden pins the encoding: stored chains must verify
// forever, so a change here needs a new hash version, not a new golden value.
func TestComputeAuditHash_Golden(t *testing.T) {
	t.Parallel()
	prev := make([]byte, 32)
	for i := range prev {
		prev[i] = byte(i)
	}
	r := domain.AuditRecord{
		Seq: 42, At: time.Date(2025, 3, 1, 12, 0, 0, 500000000, time.UTC),
		Actor: "oncall-sre", Action: "breaker.open", Subject: "payments", Reason: "vendor maintenance",
		Details: json.RawMessage(`{"ttl": "90m", "trigger_replay": true, "n": 1.50}`), PrevHash: prev,
	}
	h, err := domain.ComputeAuditHash(testKey, r)
	require.NoError(t, err)
	require.Equal(t, "aa6abab50050819f66521b16c69f516895c8232e235a2fa963f1abedad196720", hex.EncodeToString(h))
}

func ExampleVerifyAuditChain() {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	first, _ := domain.ChainAuditRecord(testKey, nil, domain.AuditRecord{At: at, Actor: "oncall", Action: "kill_switch_on", Reason: "incident"})
	second, _ := domain.ChainAuditRecord(testKey, &first, domain.AuditRecord{At: at.Add(time.Minute), Actor: "oncall", Action: "kill_switch_off", Reason: "resolved"})
	fmt.Println(domain.VerifyAuditChain(testKey, []domain.AuditRecord{first, second}))

	first.Reason = "routine"
	fmt.Println(domain.VerifyAuditChain(testKey, []domain.AuditRecord{first, second}) != nil)
	// Output:
	// <nil>
	// true
}

func TestParseAuditKey(t *testing.T) {
	t.Parallel()
	k, err := domain.ParseAuditKey([]byte("  " + string(testKey) + "\n"))
	require.NoError(t, err)
	require.Equal(t, testKey, k, "white space around the key is dropped")
	require.NotContains(t, fmt.Sprint(k), string(testKey), "the key never prints")
	for _, in := range []string{"", "\n", "short-key", string(testKey[:31])} {
		_, err := domain.ParseAuditKey([]byte(in))
		require.ErrorIs(t, err, domain.ErrInvalidAuditKey, "%q", in)
	}
	_, err = domain.ComputeAuditHash(nil, domain.AuditRecord{Seq: 1})
	require.ErrorIs(t, err, domain.ErrInvalidAuditKey, "no hash without a key")
}

// TestVerifyAuditChain_ARehashWithoutTheKeyIsSeen is the attack of a database
// writer who edits a record and re-hashes it and every later one: without
// the key (here: with another) each re-hashed record is seen as modified, at
// the edited one.
func TestVerifyAuditChain_ARehashWithoutTheKeyIsSeen(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 6)
	forger := domain.AuditKey("an attacker's guess of the key...")
	forged := slices.Clone(log[:2])
	for _, r := range log[2:] {
		if r.Seq == 3 {
			r.Reason = "nothing happened"
		}
		prev := forged[len(forged)-1]
		c, err := domain.ChainAuditRecord(forger, &prev, r)
		require.NoError(t, err)
		forged = append(forged, c)
	}
	require.NoError(t, domain.VerifyAuditSegment(forger, forged[1], forged[2:]), "with the forger's key the forged suffix links")
	err := domain.VerifyAuditChain(testKey, forged)
	var chain *domain.AuditChainError
	require.ErrorAs(t, err, &chain)
	require.Equal(t, int64(3), chain.Seq)
	require.Equal(t, domain.AuditModified, chain.Problem)
}

func TestAuditAnchors(t *testing.T) {
	t.Parallel()
	log := auditLog(t, 5)
	var a domain.AuditAnchors
	require.NoError(t, a.CheckEnd(0), "no anchor: nothing to compare")
	for _, r := range log {
		a.Add(domain.AuditHead{Seq: r.Seq, Hash: r.Hash})
		a.Add(domain.AuditHead{Seq: r.Seq, Hash: r.Hash}) // anchored twice
	}
	a.Add(domain.AuditHead{Seq: 0, Hash: []byte{1}}) // ignored
	require.Equal(t, 5, a.Len())
	require.Equal(t, int64(5), a.MaxSeq())
	for _, r := range log {
		require.NoError(t, a.Check(r))
	}
	require.NoError(t, a.CheckEnd(5))
	require.NoError(t, a.CheckEnd(7), "records appended after the last anchor are not a cut")

	var chain *domain.AuditChainError
	require.ErrorAs(t, a.CheckEnd(2), &chain, "the last three records deleted")
	require.Equal(t, int64(3), chain.Seq)
	require.Equal(t, domain.AuditCut, chain.Problem)
	require.Contains(t, chain.Detail, "seq 3..5 deleted")
	require.ErrorIs(t, chain, domain.ErrAuditChainBroken)

	rehashed := log[3]
	rehashed.Hash = []byte("another hash")
	require.ErrorAs(t, a.Check(rehashed), &chain)
	require.Equal(t, int64(4), chain.Seq)
	require.Equal(t, domain.AuditRewritten, chain.Problem)

	// A head anchored again after a cut (a worker re-publishing the log's
	// head at start) does not hide the older anchors.
	a.Add(domain.AuditHead{Seq: 4, Hash: rehashed.Hash})
	require.ErrorAs(t, a.Check(rehashed), &chain)
	require.ErrorAs(t, a.Check(log[3]), &chain)
	require.ErrorAs(t, a.CheckEnd(4), &chain)
}
