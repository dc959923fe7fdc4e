package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/topology"
)

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNATSAt starts an embedded nats-server on port with the fleet's
// topology and payments' breaker at generation gen.
func startNATSAt(t *testing.T, port int, gen uint64) *devstack.NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: port, StoreDir: t.TempDir()})
	require.NoError(t, err)
	nc, err := nats.Connect(n.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	top, err := topology.Ensure(ctx, js, topology.Config{Partitions: 1})
	require.NoError(t, err)
	b := domain.NewBreaker("payments")
	b.Generation = gen
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	_, err = top.Breakers.Put(ctx, "payments", raw)
	require.NoError(t, err)
	return n
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// TestAdminReloadsAfterNATSRestarts is issue 14's case 1: NATS restarted
// under the admin, with other data. While it is down the dashboards are told
// the picture is stale and /readyz answers 503 (/api/health stays 200: the
// process lives); once it is back the admin loads the new fleet's state
// (generation 3, not the old 30), ends the live streams so the dashboards
// fetch it, and /readyz answers 200 again.
func TestAdminReloadsAfterNATSRestarts(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	old := startNATSAt(t, port, 30)
	nc, err := nats.Connect(old.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", DLQPoll: time.Hour}, admin.Deps{JetStream: js, Operator: &fakeOperator{}})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	base := "http://" + srv.Addr()
	require.Equal(t, http.StatusOK, getStatus(t, base+"/readyz"))

	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	sse := sseReader{bufio.NewReader(res.Body)}
	name, data := sse.next(t)
	require.Equal(t, "snapshot", name)
	var snap admin.Snapshot
	require.NoError(t, json.Unmarshal(data, &snap))
	require.Equal(t, uint64(30), snap.Breakers[0].Generation)

	old.Shutdown()
	name, data = sse.next(t)
	require.Equal(t, "stale", name, "the dashboard is told at once")
	var st admin.Staleness
	require.NoError(t, json.Unmarshal(data, &st))
	require.Contains(t, st.Reason, "NATS disconnected")
	require.Equal(t, http.StatusServiceUnavailable, getStatus(t, base+"/readyz"))
	require.Equal(t, http.StatusOK, getStatus(t, base+"/api/health"), "the process is alive")

	startNATSAt(t, port, 3)
	// The live stream ends once the new state is loaded; the dashboard's
	// next stream starts with it.
	for {
		line, err := sse.r.ReadString('\n')
		if err != nil {
			break
		}
		_ = line
	}
	require.Eventually(t, func() bool { return getStatus(t, base+"/readyz") == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	res2, err := http.Get(base + "/api/breakers")
	require.NoError(t, err)
	defer res2.Body.Close()
	var list admin.BreakerList
	require.NoError(t, json.NewDecoder(res2.Body).Decode(&list))
	require.Len(t, list.Breakers, 1)
	require.Equal(t, uint64(3), list.Breakers[0].Generation, "the new fleet's breaker, not the old one's")

	// A dashboard that connects now gets the fresh picture, not stale.
	req, err = http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	require.NoError(t, err)
	res3, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res3.Body.Close() })
	name, data = sseReader{bufio.NewReader(res3.Body)}.next(t)
	require.Equal(t, "snapshot", name)
	snap = admin.Snapshot{}
	require.NoError(t, json.Unmarshal(data, &snap))
	require.Nil(t, snap.Stale)
	require.Equal(t, uint64(3), snap.Breakers[0].Generation)
}
