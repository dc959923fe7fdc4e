//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// auditAppendLock is the advisory lock every audit append takes (the
// store's auditLockKey): holding it keeps the fleet's writers out while the
// case tampers with the log and puts it back.
const auditAppendLock int64 = 0x62616c6475720002

// auditTampering is the database writer's attack on the audit log: with the
// fleet's appends held off, it deletes the newest three records and, after
// putting them back, edits one and re-hashes it and every later one with
// the key, as an insider holding the key would. `audit verify` (the
// operator client's check: keyed chain against the heads in BALDUR_AUDIT)
// must name the first bad seq each time, and pass again once the log is
// restored.
func (b *badInput) auditTampering(ctx context.Context) {
	h := b.h
	pool, err := pgxpool.New(ctx, h.DatabaseURL)
	if err != nil {
		b.t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool, store.WithAuditKey(testenv.AuditKey),
		store.WithAuditAnchor(auditanchor.NewPublisher(h.JS, slog.New(slog.DiscardHandler))))
	for i := range 5 {
		if _, err := st.AppendAudit(ctx, domain.AuditRecord{Actor: "chaos", Action: "dlq.close",
			Subject: fmt.Sprintf("dlq:tamper-%d", i), Reason: "a record to tamper with"}); err != nil {
			b.t.Fatal(err)
		}
	}
	verify := func() error {
		var heads *auditanchor.Heads
		err := h.retryTransient(ctx, func(ctx context.Context) error {
			var err error
			heads, err = auditanchor.Read(ctx, h.JS)
			return err
		})
		if err != nil {
			b.t.Fatal(err)
		}
		_, err = st.VerifyAuditChain(ctx, &heads.Anchors)
		return err
	}

	// Hold the append lock for the whole case: the audit consumer's
	// appends wait (or are delivered again), none lands on a tampered log.
	lock, err := pool.Begin(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := lock.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditAppendLock); err != nil {
		b.t.Fatal(err)
	}
	if err := verify(); err != nil {
		h.Violation("audit: the log does not verify before the tampering: %v", err)
		return
	}
	last, ok, err := st.LastAudit(ctx)
	if err != nil || !ok {
		b.t.Fatalf("chaos: last audit record: %v %v", ok, err)
	}
	tail, err := st.ListAudit(ctx, "", last.Seq-3, 3)
	if err != nil {
		b.t.Fatal(err)
	}
	expect := func(what string, seq int64, problem domain.AuditProblem) {
		b.bad("audit log: " + what)
		err := verify()
		var chain *domain.AuditChainError
		switch {
		case !errors.As(err, &chain):
			h.Violation("audit: %s: verify gave %v, want %s at seq %d", what, err, problem, seq)
		case chain.Seq != seq || chain.Problem != problem:
			h.Violation("audit: %s: verify named %s at seq %d, want %s at seq %d", what, chain.Problem, chain.Seq, problem, seq)
		default:
			b.answer("audit verify: " + what)
		}
	}
	exec := func(sql string, args ...any) {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.t.Fatalf("chaos: %s: %v", sql, err)
		}
	}
	restore := func(what string) {
		for _, r := range tail {
			exec(`INSERT INTO audit_log (seq, at, actor, action, subject, reason, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (seq) DO UPDATE SET reason = EXCLUDED.reason, prev_hash = EXCLUDED.prev_hash, hash = EXCLUDED.hash`,
				r.Seq, r.At, r.Actor, r.Action, r.Subject, r.Reason, []byte(r.Details), r.PrevHash, r.Hash)
		}
		if err := verify(); err != nil {
			h.Violation("audit: the log restored after %s does not verify: %v", what, err)
		}
	}

	exec(`DELETE FROM audit_log WHERE seq > $1`, last.Seq-3)
	expect("the last 3 rows deleted", last.Seq-2, domain.AuditCut)
	restore("the cut")

	prev, err := st.ListAudit(ctx, "", last.Seq-4, 1)
	if err != nil || len(prev) != 1 {
		b.t.Fatalf("chaos: audit record %d: %v", last.Seq-3, err)
	}
	p := prev[0]
	for i, r := range tail {
		if i == 0 {
			r.Reason = "nothing happened"
		}
		c, err := domain.ChainAuditRecord(testenv.AuditKey, &p, r)
		if err != nil {
			b.t.Fatal(err)
		}
		exec(`UPDATE audit_log SET reason = $2, prev_hash = $3, hash = $4 WHERE seq = $1`, c.Seq, c.Reason, c.PrevHash, c.Hash)
		p = c
	}
	expect("a row edited and the rest re-hashed with the key", last.Seq-2, domain.AuditRewritten)
	restore("the rewrite")
}
