package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
)

type auditFlags struct {
	subject *string
	after   *int64
	limit   *int
}

func auditCommands() []*command {
	return []*command{
		{
			noun: "audit", verb: "list", needs: needDB,
			summary: "list audit records in order (every operator action and every transition)",
			examples: []string{"baldur audit list --database-url postgres://baldur@db/baldur",
				"baldur audit list --subject breaker:payments --limit 20", "baldur audit list --after 1200 --json"},
			flags: func(f *process.Flags) func() any {
				fs := f.FlagSet()
				af := &auditFlags{
					subject: fs.String("subject", "", "only this subject (breaker:<svc>, dlq:<id>, governance:<key>, ...)"),
					after:   fs.Int64("after", 0, "only records after this sequence number"),
					limit:   fs.Int("limit", opsclient.DefaultAuditLimit, "most records, 1..1000"),
				}
				return func() any { return af }
			},
			run: runAuditList,
		},
		{
			noun: "audit", verb: "verify", needs: needDB | needNATS | needAuditKey,
			summary: "verify the audit log: its keyed hash chain, and the heads anchored in JetStream (a cut tail, a re-hashed log)",
			examples: []string{"baldur audit verify --database-url postgres://baldur@db/baldur --audit-key-file /run/secrets/audit.key",
				"BALDUR_AUDIT_KEY_FILE=audit.key baldur audit verify --json"},
			run: runAuditVerify,
		},
	}
}

// auditList reads the audit log straight from PostgreSQL: audit commands
// need no NATS connection.
func (r *runner) auditList(q opsclient.AuditQuery) ([]domain.AuditRecord, error) {
	ctx, cancel := r.opCtx()
	defer cancel()
	if q.Limit < 1 || q.Limit > opsclient.MaxAuditLimit {
		return nil, usagef("audit list: --limit %d; want 1..%d", q.Limit, opsclient.MaxAuditLimit)
	}
	recs, err := r.store.ListAudit(ctx, q.Subject, q.AfterSeq, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("%w: list the audit log: %w", ErrDatabaseUnreachable, err)
	}
	return recs, nil
}

func runAuditList(r *runner, _ []string) error {
	af := r.extra.(*auditFlags)
	recs, err := r.auditList(opsclient.AuditQuery{Subject: *af.subject, AfterSeq: *af.after, Limit: *af.limit})
	if err != nil {
		return err
	}
	if r.json {
		if recs == nil {
			recs = []domain.AuditRecord{}
		}
		return printJSON(r.stdout, recs)
	}
	t := newTable(r.stdout, "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "REASON")
	for _, rec := range recs {
		t.row(strconv.FormatInt(rec.Seq, 10), stamp(rec.At), orDash(rec.Actor), rec.Action, orDash(rec.Subject), clip(orDash(rec.Reason), 60))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintln(r.stdout, "(no audit records)")
	} else if len(recs) == *af.limit {
		fmt.Fprintf(r.stdout, "more: --after %d\n", recs[len(recs)-1].Seq)
	}
	return nil
}

func runAuditVerify(r *runner, _ []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	v, err := r.client.AuditVerify(ctx)
	var chain *domain.AuditChainError
	switch {
	case err == nil:
		if r.json {
			return printJSON(r.stdout, map[string]any{"ok": true, "verification": v})
		}
		fmt.Fprintf(r.stdout, "ok: the audit log is intact: %d records (last seq %d), checked against %d anchored heads (highest seq %d)\n",
			v.Records, v.LastSeq, v.Anchors, v.AnchoredSeq)
		if v.LastSeq > v.AnchoredSeq {
			fmt.Fprintf(r.stdout, "note: seq %d..%d not anchored yet (their heads were not published); the chain and the key cover them\n",
				v.AnchoredSeq+1, v.LastSeq)
		}
		if v.MalformedHeads > 0 {
			fmt.Fprintf(r.stdout, "warning: %d messages in BALDUR_AUDIT are not audit heads (skipped): who may publish to baldur.audit.head?\n", v.MalformedHeads)
		}
		return nil
	case errors.As(err, &chain):
		if r.json {
			_ = printJSON(r.stdout, map[string]any{"ok": false, "seq": chain.Seq, "problem": chain.Problem, "detail": chain.Detail, "verification": v})
		}
		return fmt.Errorf("audit log broken: %w", chain)
	}
	return err
}
