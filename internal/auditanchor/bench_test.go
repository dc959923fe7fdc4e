package auditanchor_test

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// BenchmarkAuditAppend is one audit record appended (advisory lock, read of
// the last record, HMAC, insert, commit), with and without the anchor of its
// head in BALDUR_AUDIT (one JetStream publish and its ack) — the cost of the
// tamper evidence per record.
func BenchmarkAuditAppend(b *testing.B) {
	env := testenv.NATS(b)
	_, err := topology.Ensure(b.Context(), env.JS, topology.Config{Partitions: 1})
	require.NoError(b, err)
	for _, bc := range []struct {
		name   string
		anchor bool
	}{{"chain", false}, {"chain+anchor", true}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := []store.Option{store.WithAuditKey(testenv.AuditKey)}
			if bc.anchor {
				opts = append(opts, store.WithAuditAnchor(auditanchor.NewPublisher(env.JS, slog.New(slog.DiscardHandler))))
			}
			st := store.New(testenv.Postgres(b), opts...)
			rec := domain.AuditRecord{Actor: "bench", Action: "breaker.opened", Subject: "breaker:payments",
				Details: []byte(`{"service":"payments","trigger":"auto"}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.AppendAudit(b.Context(), rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
