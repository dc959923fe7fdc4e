package topology_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// TestStreamsRefuseOversizeMessages: a message larger than the contract
// allows on any input subject is refused to its publisher by the stream,
// never stored for a day, even where the server's max_payload would carry
// it (deploy/nats allows 1 MB, and so does this test server: 900 KiB is sent); a
// message at the contract's limit is stored.
func TestStreamsRefuseOversizeMessages(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2})
	require.NoError(t, err)

	big := []byte(`{"pad":"` + strings.Repeat("a", 900<<10) + `"}`)
	for _, subj := range []string{events.MustOutcomeSubject("svc"), events.MustControlSubject("svc"), events.SubjectGovernance,
		events.MustDLQSubject("svc")} {
		_, err := env.JS.Publish(ctx, subj, big)
		require.Error(t, err, "900 KiB on %s", subj)
		require.ErrorContains(t, err, "message size exceeds maximum allowed", subj)
	}
	_, err = env.JS.Publish(ctx, events.MustOutcomeSubject("svc"), make([]byte, events.MaxOutcomeBody))
	require.NoError(t, err, "a body at the contract's limit is stored")
	_, err = env.JS.Publish(ctx, events.MustDLQSubject("svc"), make([]byte, events.MaxDeadLetterBody))
	require.NoError(t, err)

	for name, want := range map[string]int32{topology.StreamInput: topology.InputMaxMsgSize,
		topology.StreamDLQ: topology.DLQMaxMsgSize, topology.StreamEvents: topology.EventsMaxMsgSize} {
		s, err := env.JS.Stream(ctx, name)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		require.Equal(t, want, cfg.MaxMsgSize, name)
		require.Positive(t, cfg.MaxBytes, name)
	}
}

// TestDLQBoundPerService: beyond its bound one service's dead letters are
// refused to its publishers, with a clear error; other services go on.
func TestDLQBoundPerService(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1, DLQMaxPerService: 5})
	require.NoError(t, err)
	for range 5 {
		_, err := env.JS.Publish(ctx, events.MustDLQSubject("flood"), []byte(`{}`))
		require.NoError(t, err)
	}
	_, err = env.JS.Publish(ctx, events.MustDLQSubject("flood"), []byte(`{}`))
	require.ErrorContains(t, err, "maximum messages per subject exceeded")
	_, err = env.JS.Publish(ctx, events.MustDLQSubject("calm"), []byte(`{}`))
	require.NoError(t, err, "another service is not affected")
	s, err := env.JS.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 6, info.State.Msgs, "nothing stored was dropped")
}

// TestEnsureAddsMissingLimitsKeepsTunedOnes: a stream created before the
// limits existed gets them; a limit an operator set is kept.
func TestEnsureAddsMissingLimitsKeepsTunedOnes(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	for name, edit := range map[string]func(*jetstream.StreamConfig){
		topology.StreamDLQ: func(c *jetstream.StreamConfig) {
			c.MaxMsgSize, c.MaxBytes, c.MaxMsgsPerSubject, c.DiscardNewPerSubject, c.Discard = -1, -1, -1, false, jetstream.DiscardOld
		},
		topology.StreamEvents: func(c *jetstream.StreamConfig) { c.MaxBytes = 64 << 20 }, // tuned
	} {
		s, err := env.JS.Stream(ctx, name)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		edit(&cfg)
		_, err = env.JS.UpdateStream(ctx, cfg)
		require.NoError(t, err, name)
	}
	_, err = topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	dlq, err := env.JS.Stream(ctx, topology.StreamDLQ)
	require.NoError(t, err)
	cfg := dlq.CachedInfo().Config
	require.EqualValues(t, topology.DLQMaxMsgSize, cfg.MaxMsgSize)
	require.EqualValues(t, topology.DefaultDLQMaxBytes, cfg.MaxBytes)
	require.EqualValues(t, topology.DefaultDLQMaxPerService, cfg.MaxMsgsPerSubject)
	require.True(t, cfg.DiscardNewPerSubject)
	require.Equal(t, jetstream.DiscardNew, cfg.Discard)
	ev, err := env.JS.Stream(ctx, topology.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 64<<20, ev.CachedInfo().Config.MaxBytes, "a tuned limit is kept")
}

func TestConfigRefusesBadLimits(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	_, err := topology.Ensure(context.Background(), env.JS, topology.Config{DLQMaxBytes: 10})
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
	require.ErrorContains(t, err, "DLQ max bytes 10 must be at least 1 MiB")
	_, err = topology.Ensure(context.Background(), env.JS, topology.Config{DLQMaxPerService: -1})
	require.ErrorIs(t, err, topology.ErrInvalidConfig)
}

// TestAuditStreamKeepsItsHeads: BALDUR_AUDIT refuses to delete a head or to
// be purged, and refuses a message larger than a head.
func TestAuditStreamKeepsItsHeads(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 1})
	require.NoError(t, err)
	ack, err := env.JS.Publish(ctx, events.SubjectAuditHead, []byte(`{}`))
	require.NoError(t, err)
	s, err := env.JS.Stream(ctx, topology.StreamAudit)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	require.True(t, cfg.DenyDelete)
	require.True(t, cfg.DenyPurge)
	require.Equal(t, int64(topology.DefaultAuditMaxHeads), cfg.MaxMsgs)
	require.Error(t, s.DeleteMsg(ctx, ack.Sequence), "a head cannot be deleted")
	require.Error(t, s.Purge(ctx), "the stream cannot be purged")
	_, err = env.JS.Publish(ctx, events.SubjectAuditHead, make([]byte, 2*topology.AuditMaxMsgSize))
	require.ErrorContains(t, err, "message size exceeds maximum allowed")
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Msgs)
}
