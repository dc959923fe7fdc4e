package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/events"
)

// rejectedNamespace derives the ce-id of a rejected config or governance
// value from what was refused, so that every worker refusing the same value
// publishes the same Nats-Msg-Id and the events stream keeps one event.
var rejectedNamespace = uuid.MustParse("5e0d6a3b-1f7c-4c2e-9b8a-2d4f6e8a0c13")

// rejectedPublishTimeout bounds one publish of a rejected event.
const rejectedPublishTimeout = 10 * time.Second

// RejectedPublisher returns the fleetstate.WithRejected callback of a
// breaker-worker: each refused value of baldur_config or baldur_governance is
// logged and published to baldur.event.rejected.<kind> as node, in the
// background (the callback runs on a watch goroutine and must not block).
// Publishes end when ctx does. Open installs it when the process runs
// RoleBreaker.
func RejectedPublisher(ctx context.Context, js jetstream.JetStream, node string, log *slog.Logger) func(events.Rejected) {
	return func(r events.Rejected) {
		log.Warn("value refused", slog.String("kind", string(r.Kind)), slog.String("subject", r.Subject),
			slog.String("code", r.Code), slog.String("reason", r.Reason))
		go func() {
			subj, err := events.RejectedSubject(r.Kind)
			if err != nil {
				log.Warn("rejected event not published", slog.Any("error", err))
				return
			}
			id := uuid.NewSHA1(rejectedNamespace, []byte(r.Subject+"\x00"+r.Code+"\x00"+r.Reason))
			msg, err := events.NewMsg(subj, events.NewEnvelope(events.TypeRejected, id, node, r.At), r)
			if err != nil {
				log.Warn("rejected event not published", slog.Any("error", err))
				return
			}
			pctx, cancel := context.WithTimeout(ctx, rejectedPublishTimeout)
			defer cancel()
			if _, err := js.PublishMsg(pctx, msg); err != nil {
				log.Warn("rejected event not published", slog.String("subject", subj), slog.Any("error", err))
			}
		}()
	}
}
