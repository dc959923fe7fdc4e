package admin

import (
	"context"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
)

// Operator is what the server needs of the operator client: the fleet's one
// writer path for breaker and governance commands (each waits until the
// fleet applied it), the DLQ endpoints and the audit log. *opsclient.Client
// implements it.
type Operator interface {
	// Breaker returns a breaker's full state and KV revision.
	Breaker(ctx context.Context, svc string) (domain.Breaker, uint64, error)
	// BreakerCommand publishes a breaker command and waits until applied.
	BreakerCommand(ctx context.Context, svc string, cmd events.BreakerCommand) (opsclient.Applied, error)
	// GovernanceState reads the governance keys.
	GovernanceState(ctx context.Context) (opsclient.GovernanceStatus, error)
	// Governance publishes a governance command and waits until applied.
	Governance(ctx context.Context, cmd events.GovernanceCommand) (opsclient.GovernanceApplied, error)
	// DLQ calls the endpoint baldur.api.dlq.<op>.
	DLQ(ctx context.Context, op events.DLQOp, req, resp any) error
	// AuditList reads the audit log.
	AuditList(ctx context.Context, q opsclient.AuditQuery) ([]domain.AuditRecord, error)
	// AuditVerify verifies the audit log's keyed hash chain against the
	// heads anchored in JetStream.
	AuditVerify(ctx context.Context) (opsclient.AuditVerification, error)
}

var _ Operator = (*opsclient.Client)(nil)

// dlqStats reads the DLQ's counts through op.
func dlqStats(op Operator) dlqStatsFunc {
	return func(ctx context.Context) (replay.DLQStatsReply, error) {
		var r replay.DLQStatsReply
		err := op.DLQ(ctx, events.DLQOpStats, nil, &r)
		return r, err
	}
}
