package devstack

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestStartNATS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := StartNATS(ctx, NATSOptions{Port: RandomPort, StoreDir: t.TempDir(), ServerName: "solo"})
	require.NoError(t, err)
	defer n.Shutdown()
	require.Equal(t, "solo", n.Server().Name())
	require.True(t, n.Server().JetStreamEnabled())

	nc, err := nats.Connect(n.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	// $JS.API.INFO answers: JetStream is up.
	msg, err := nc.Request("$JS.API.INFO", nil, 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(msg.Data), `"type":"io.nats.jetstream.api.v1.account_info_response"`)
}

func TestStartNATSErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = busy.Close() }) // not defer: the subtests run after this function returns

	for _, tc := range []struct {
		name    string
		opts    NATSOptions
		wantIs  error
		wantMsg string
	}{
		{name: "no store", opts: NATSOptions{Port: RandomPort}, wantMsg: "StoreDir is required"},
		{name: "port in use", opts: NATSOptions{Port: busy.Addr().(*net.TCPAddr).Port, StoreDir: t.TempDir()},
			wantIs: ErrNATSNotReady, wantMsg: "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			begin := time.Now()
			_, err := StartNATS(ctx, tc.opts)
			if tc.wantIs != nil {
				require.ErrorIs(t, err, tc.wantIs)
			}
			require.ErrorContains(t, err, tc.wantMsg)
			require.Less(t, time.Since(begin), 10*time.Second, "a fatal start-up error is reported at once, not at the deadline")
		})
	}
}

func TestClusterNodeControl(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	begin := time.Now()
	c, err := StartCluster(ctx, ClusterOptions{StoreDir: t.TempDir(), Name: "ctl"})
	require.NoError(t, err)
	defer c.Shutdown()
	t.Logf("3-node cluster ready in %s", time.Since(begin))

	require.Equal(t, 3, c.Size())
	urls := c.ClientURLs()
	require.Len(t, urls, 3)
	require.Equal(t, strings.Join(urls, ","), c.ClientURL())
	for i := range 3 {
		require.True(t, c.Server(i).JetStreamIsClustered())
		require.Equal(t, "ctl", c.Server(i).ClusterName())
	}

	// An R3 stream proves the meta group has placed work on all three peers
	// before its leader is stopped: a group stopped while still forming can
	// be left without a quorum that knows it (seen once in CI).
	nc0, err := nats.Connect(c.ClientURL())
	require.NoError(t, err)
	js0, err := jetstream.New(nc0)
	require.NoError(t, err)
	_, err = js0.CreateStream(ctx, jetstream.StreamConfig{Name: "CTL", Subjects: []string{"ctl.>"}, Replicas: 3})
	require.NoError(t, err)
	nc0.Close()

	leader := c.MetaLeader()
	require.GreaterOrEqual(t, leader, 0)
	require.NoError(t, c.StopNode(leader))
	require.NoError(t, c.StopNode(leader), "stopping a stopped node does nothing")
	require.Nil(t, c.Server(leader))
	require.NoError(t, c.WaitReady(ctx), "two of three nodes elect a new meta leader")
	newLeader := c.MetaLeader()
	require.GreaterOrEqual(t, newLeader, 0)
	require.NotEqual(t, leader, newLeader)

	begin = time.Now()
	require.NoError(t, c.RestartNode(ctx, leader))
	t.Logf("node restarted and cluster ready in %s", time.Since(begin))
	require.True(t, c.Running(leader))
	require.Equal(t, urls, c.ClientURLs(), "a restarted node keeps its ports")
	require.NoError(t, c.RestartNode(ctx, leader), "restarting a running node does nothing")

	nc, err := nats.Connect(urls[leader])
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Request("$JS.API.INFO", nil, 5*time.Second)
	require.NoError(t, err)

	require.ErrorIs(t, c.StopNode(3), ErrNodeIndex)
	require.ErrorIs(t, c.RestartNode(ctx, -1), ErrNodeIndex)
	require.Nil(t, c.Server(7))
}

func TestStartClusterErrors(t *testing.T) {
	t.Parallel()
	_, err := StartCluster(t.Context(), ClusterOptions{})
	require.ErrorContains(t, err, "StoreDir is required")
	_, err = StartCluster(t.Context(), ClusterOptions{Nodes: 1, StoreDir: t.TempDir()})
	require.ErrorContains(t, err, "at least two nodes")
}
