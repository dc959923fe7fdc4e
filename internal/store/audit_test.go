package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
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
	require.NoError(t, s.VerifyAuditChain(ctx), "an empty log is intact")

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
	require.NoError(t, s.VerifyAuditChain(ctx))

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
			require.NoError(t, s.VerifyAuditChain(t.Context()))
			_, err := pool.Exec(t.Context(), tt.sql)
			require.NoError(t, err)

			err = s.VerifyAuditChain(t.Context())
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
		rec, err := domain.ChainAuditRecord(prev, domain.AuditRecord{At: t0, Actor: "a", Action: "x", Subject: "s"})
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO audit_log (seq, at, actor, action, subject, reason, details, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			rec.Seq, rec.At, rec.Actor, rec.Action, rec.Subject, rec.Reason, []byte(rec.Details), rec.PrevHash, rec.Hash)
		require.NoError(t, err, i)
		prev = &rec
	}
	require.NoError(t, s.VerifyAuditChain(ctx))

	_, err := pool.Exec(ctx, `UPDATE audit_log SET actor = 'mallory' WHERE seq = 2100`)
	require.NoError(t, err)
	var chainErr *domain.AuditChainError
	require.ErrorAs(t, s.VerifyAuditChain(ctx), &chainErr)
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
	require.NoError(t, s.VerifyAuditChain(ctx))
}
