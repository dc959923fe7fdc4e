package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// appendN appends n records and returns them as stored.
func appendN(t *testing.T, s *store.Store, n int) []domain.AuditRecord {
	t.Helper()
	out := make([]domain.AuditRecord, n)
	for i := range n {
		rec, err := s.AppendAudit(t.Context(), domain.AuditRecord{
			At:      t0.Add(time.Duration(i) * time.Second).Add(1234 * time.Nanosecond),
			Actor:   "oncall",
			Action:  "breaker.open",
			Subject: fmt.Sprintf("breaker:svc-%d", i%3),
			Reason:  "vendor maintenance",
			Details: json.RawMessage(fmt.Sprintf(`{"ttl": "90m", "n": %d.0, "nested": {"b": 1, "a": [true, null]}}`, i)),
		})
		require.NoError(t, err)
		out[i] = rec
	}
	return out
}

func TestAuditAppendAndVerify(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)), "an empty log is intact")

	recs := appendN(t, s, 5)
	for i, r := range recs {
		require.EqualValues(t, i+1, r.Seq)
		require.Equal(t, r.At, r.At.Truncate(time.Microsecond))
		if i == 0 {
			require.Empty(t, r.PrevHash)
		} else {
			require.Equal(t, recs[i-1].Hash, r.PrevHash)
		}
	}
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)))

	stored, err := s.ListAudit(ctx, "", 0, 100)
	require.NoError(t, err)
	require.Len(t, stored, 5)
	for i := range stored {
		require.Equal(t, recs[i].Seq, stored[i].Seq)
		require.Equal(t, recs[i].Hash, stored[i].Hash)
		require.Equal(t, recs[i].At, stored[i].At)
	}
	page, err := s.ListAudit(ctx, "breaker:svc-1", 0, 100)
	require.NoError(t, err)
	require.Len(t, page, 2)
	page, err = s.ListAudit(ctx, "", 3, 1)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.EqualValues(t, 4, page[0].Seq)

	_, err = s.AppendAudit(ctx, domain.AuditRecord{Action: "x"})
	require.ErrorIs(t, err, store.ErrInvalidArgument)
	_, err = s.AppendAudit(ctx, domain.AuditRecord{Actor: "a", Action: "x", Details: json.RawMessage(`{`)})
	require.ErrorIs(t, err, domain.ErrInvalidAuditDetails)
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sql     string
		seq     int64
		problem domain.AuditProblem
	}{
		{"updated reason", `UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3`, 3, domain.AuditModified},
		{"updated details", `UPDATE audit_log SET details = '{"ttl": "1m"}' WHERE seq = 4`, 4, domain.AuditModified},
		{"updated time", `UPDATE audit_log SET at = at + interval '1 second' WHERE seq = 2`, 2, domain.AuditModified},
		{"deleted middle row", `DELETE FROM audit_log WHERE seq = 3`, 4, domain.AuditGap},
		{"deleted head", `DELETE FROM audit_log WHERE seq = 1`, 2, domain.AuditGap},
		{"renumbered after delete", `DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = seq - 1 WHERE seq > 3`,
			3, domain.AuditModified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, pool, _ := newStore(t)
			appendN(t, s, 5)
			require.NoError(t, verifyErr(s.VerifyAuditChain(t.Context(), nil)))
			_, err := pool.Exec(t.Context(), tt.sql)
			require.NoError(t, err)

			err = verifyErr(s.VerifyAuditChain(t.Context(), nil))
			require.ErrorIs(t, err, domain.ErrAuditChainBroken)
			var chainErr *domain.AuditChainError
			require.True(t, errors.As(err, &chainErr))
			require.Equal(t, tt.seq, chainErr.Seq)
			require.Equal(t, tt.problem, chainErr.Problem)
		})
	}
}

func TestAuditVerifyAcrossPages(t *testing.T) {
	t.Parallel()
	s, pool, _ := newStore(t)
	ctx := t.Context()
	// More records than one verification page, written by raw SQL for
	// speed, chained with the domain function.
	var prev *domain.AuditRecord
	const n = 2500
	for i := range n {
		rec, err := domain.ChainAuditRecord(testenv.AuditKey, prev, domain.AuditRecord{At: t0, Actor: "a", Action: "x", Subject: "s"})
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO audit_log (seq, at, actor, action, subject, reason, details, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			rec.Seq, rec.At, rec.Actor, rec.Action, rec.Subject, rec.Reason, []byte(rec.Details), rec.PrevHash, rec.Hash)
		require.NoError(t, err, i)
		prev = &rec
	}
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)))

	_, err := pool.Exec(ctx, `UPDATE audit_log SET actor = 'mallory' WHERE seq = 2100`)
	require.NoError(t, err)
	var chainErr *domain.AuditChainError
	require.ErrorAs(t, verifyErr(s.VerifyAuditChain(ctx, nil)), &chainErr)
	require.EqualValues(t, 2100, chainErr.Seq)
}

func TestAuditConcurrentAppendsStayChained(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t)
	ctx := t.Context()
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.AppendAudit(ctx, domain.AuditRecord{
					Actor: fmt.Sprintf("writer-%d", w), Action: "dlq.requeue", Reason: fmt.Sprint(i),
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	recs, err := s.ListAudit(ctx, "", 0, 1000)
	require.NoError(t, err)
	require.Len(t, recs, writers*each)
	require.NoError(t, verifyErr(s.VerifyAuditChain(ctx, nil)))
}

// recordingAnchor keeps the heads the store anchors.
type recordingAnchor struct {
	mu    sync.Mutex
	heads []domain.AuditHead
}

func (a *recordingAnchor) AnchorAuditHead(_ context.Context, rec domain.AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.heads = append(a.heads, domain.AuditHead{Seq: rec.Seq, Hash: rec.Hash})
}

func (a *recordingAnchor) anchors() *domain.AuditAnchors {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out domain.AuditAnchors
	for _, h := range a.heads {
		out.Add(h)
	}
	return &out
}

func TestAuditNeedsAKey(t *testing.T) {
	t.Parallel()
	_, pool, _ := newStore(t)
	s := store.New(pool)
	_, err := s.AppendAudit(t.Context(), domain.AuditRecord{Actor: "a", Action: "x"})
	require.ErrorIs(t, err, store.ErrNoAuditKey)
	_, _, err = s.AppendAuditEvent(t.Context(), "6f1c1f3e-93a4-4d1a-9d0e-8d7c0b2f6a11", domain.AuditRecord{Actor: "a", Action: "x"})
	require.ErrorIs(t, err, store.ErrNoAuditKey)
	_, err = s.VerifyAuditChain(t.Context(), nil)
	require.ErrorIs(t, err, store.ErrNoAuditKey)
}

// TestAuditAnchorsSeeWhatTheChainCannot: every commit anchors its head; a
// cut tail and a log re-hashed with the key are caught by the anchors, a log
// re-hashed without it by the key.
func TestAuditAnchorsSeeWhatTheChainCannot(t *testing.T) {
	t.Parallel()
	rehash := func(t *testing.T, pool *pgxpool.Pool, key domain.AuditKey, from int64) {
		t.Helper()
		recs, err := store.New(pool, store.WithAuditKey(testenv.AuditKey)).ListAudit(t.Context(), "", 0, 100)
		require.NoError(t, err)
		prev := recs[from-2]
		for _, r := range recs[from-1:] {
			if r.Seq == from {
				r.Reason = "nothing happened"
			}
			c, err := domain.ChainAuditRecord(key, &prev, r)
			require.NoError(t, err)
			_, err = pool.Exec(t.Context(), `UPDATE audit_log SET reason = $2, prev_hash = $3, hash = $4 WHERE seq = $1`,
				c.Seq, c.Reason, c.PrevHash, c.Hash)
			require.NoError(t, err)
			prev = c
		}
	}
	tests := []struct {
		name    string
		tamper  func(t *testing.T, pool *pgxpool.Pool)
		seq     int64
		problem domain.AuditProblem
	}{
		{"last three rows deleted", func(t *testing.T, pool *pgxpool.Pool) {
			_, err := pool.Exec(t.Context(), `DELETE FROM audit_log WHERE seq > 5`)
			require.NoError(t, err)
		}, 6, domain.AuditCut},
		{"every row deleted", func(t *testing.T, pool *pgxpool.Pool) {
			_, err := pool.Exec(t.Context(), `DELETE FROM audit_log`)
			require.NoError(t, err)
		}, 1, domain.AuditCut},
		{"a row edited, the rest re-hashed without the key", func(t *testing.T, pool *pgxpool.Pool) {
			rehash(t, pool, domain.AuditKey("not the key, but 32 bytes or more"), 4)
		}, 4, domain.AuditModified},
		{"a row edited, the rest re-hashed with the key", func(t *testing.T, pool *pgxpool.Pool) {
			rehash(t, pool, testenv.AuditKey, 4)
		}, 4, domain.AuditRewritten},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			anchor := &recordingAnchor{}
			s, pool, _ := newStore(t, store.WithAuditAnchor(anchor))
			appendN(t, s, 8)
			require.Len(t, anchor.heads, 8, "one head per committed record")
			rep, err := s.VerifyAuditChain(t.Context(), anchor.anchors())
			require.NoError(t, err)
			require.Equal(t, store.AuditReport{Records: 8, LastSeq: 8, Anchors: 8, AnchoredSeq: 8}, rep)

			tt.tamper(t, pool)
			chainAlone := verifyErr(s.VerifyAuditChain(t.Context(), nil))
			if tt.problem == domain.AuditModified {
				require.Error(t, chainAlone, "the key sees a record re-hashed without it")
			} else {
				require.NoError(t, chainAlone, "the chain alone cannot see it")
			}
			_, err = s.VerifyAuditChain(t.Context(), anchor.anchors())
			var chainErr *domain.AuditChainError
			require.ErrorAs(t, err, &chainErr)
			require.Equal(t, tt.seq, chainErr.Seq, chainErr.Error())
			require.Equal(t, tt.problem, chainErr.Problem, chainErr.Error())
		})
	}
}
