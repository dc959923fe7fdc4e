package auditanchor_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func rec(seq int64, b byte) domain.AuditRecord {
	return domain.AuditRecord{Seq: seq, At: time.Unix(1_700_000_000+seq, 0).UTC(), Hash: bytes.Repeat([]byte{b}, 32)}
}

// TestReadReturnsEveryHead: more heads than one fetch, the same head twice,
// an older head published after a newer one, and a message that is not a
// head, all read back as what they are.
func TestReadReturnsEveryHead(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	_, err := auditanchor.Read(ctx, env.JS)
	require.ErrorIs(t, err, auditanchor.ErrNoStream)
	_, err = topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	heads, err := auditanchor.Read(ctx, env.JS)
	require.NoError(t, err)
	require.Zero(t, heads.Anchors.Len(), "an empty stream")

	p := auditanchor.NewPublisher(env.JS, slog.New(slog.DiscardHandler))
	const n = 2500
	for i := int64(1); i <= n; i++ {
		require.NoError(t, p.Publish(ctx, rec(i, byte(i))))
	}
	require.NoError(t, p.Publish(ctx, rec(n, byte(n%256))), "the same head again: one message (dedupe)")
	p.AnchorAuditHead(ctx, rec(7, 0xee)) // a different hash for an old seq
	_, err = env.JS.Publish(ctx, events.SubjectAuditHead, []byte(`{"seq":"x"}`))
	require.NoError(t, err)
	require.Equal(t, auditanchor.Stats{Published: n + 2}, p.Stats())

	heads, err = auditanchor.Read(ctx, env.JS)
	require.NoError(t, err)
	require.Equal(t, n+1, heads.Anchors.Len())
	require.Equal(t, int64(n), heads.Anchors.MaxSeq())
	require.Equal(t, 1, heads.Malformed)
	require.NoError(t, heads.Anchors.Check(rec(3, 3)))
	require.Error(t, heads.Anchors.Check(rec(7, 7)), "seq 7 was also anchored with another hash")
	require.Error(t, heads.Anchors.CheckEnd(n-1))
}

// TestPublishFailsWithoutTheStream: a head that cannot be stored is an
// error, counted, and only logged by AnchorAuditHead.
func TestPublishFailsWithoutTheStream(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := auditanchor.NewPublisher(env.JS, slog.New(slog.DiscardHandler))
	require.Error(t, p.Publish(ctx, rec(1, 1)))
	p.AnchorAuditHead(ctx, rec(2, 2))
	require.Equal(t, auditanchor.Stats{Failed: 2}, p.Stats())
}
