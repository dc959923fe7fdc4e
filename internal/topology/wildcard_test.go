package topology_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// Input published to a literal wildcard name is stored untransformed; it
// must still reach a breaker-worker (partition 0), which rejects it, instead
// of lying in BALDUR_INPUT unconsumed. Found by the bad-input chaos scenario.
func TestMalformedInputReachesPartitionZero(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 4})
	require.NoError(t, err)
	subjects := []string{"baldur.outcome.*", "baldur.outcome.>", "baldur.control.*", "baldur.control.>", "baldur.outcome.svc.extra"}
	for _, s := range subjects {
		_, err := env.JS.Publish(ctx, s, []byte("{}"))
		require.NoError(t, err, s)
	}
	// A consumer's pending count follows the stream a moment later: read
	// the counts until they cover every message, then check where they are.
	counts := make([]uint64, 4)
	require.Eventually(t, func() bool {
		var total uint64
		for p := range counts {
			c, err := env.JS.Consumer(ctx, topology.StreamInput, topology.ConsumerName(p))
			require.NoError(t, err)
			info, err := c.Info(ctx)
			require.NoError(t, err)
			counts[p] = info.NumPending
			total += info.NumPending
		}
		return total >= uint64(len(subjects))
	}, 10*time.Second, 10*time.Millisecond, "pending per partition: %v", counts)
	require.EqualValues(t, len(subjects), counts[0], "partition 0 takes every malformed subject: %v", counts)
	require.EqualValues(t, 0, counts[1]+counts[2]+counts[3], "each message is consumed by exactly one partition: %v", counts)
}

// A partition-0 consumer created with the earlier, narrower filters is
// widened by Ensure.
func TestEnsureWidensLegacyPartitionZero(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2})
	require.NoError(t, err)
	c, err := env.JS.Consumer(ctx, topology.StreamInput, topology.ConsumerName(0))
	require.NoError(t, err)
	cfg := c.CachedInfo().Config
	cfg.FilterSubjects = []string{topology.PartitionFilter(0), "baldur.governance", "baldur.outcome.*.>", "baldur.control.*.>"}
	_, err = env.JS.UpdateConsumer(ctx, topology.StreamInput, cfg)
	require.NoError(t, err)
	_, err = topology.Ensure(ctx, env.JS, topology.Config{Partitions: 2})
	require.NoError(t, err)
	c, err = env.JS.Consumer(ctx, topology.StreamInput, topology.ConsumerName(0))
	require.NoError(t, err)
	require.Equal(t, []string{topology.PartitionFilter(0), "baldur.governance", "baldur.outcome.>", "baldur.control.>"}, c.CachedInfo().Config.FilterSubjects)
}
