package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// liveServer is a listening admin server with cfg on an embedded NATS
// server with the topology; it returns the server and the JetStream
// context the test publishes with.
func liveServer(t *testing.T, cfg admin.Config) (*admin.Server, jetstream.JetStream) {
	t.Helper()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	cfg.Addr, cfg.DLQPoll = "127.0.0.1:0", time.Hour
	srv, err := admin.New(cfg, admin.Deps{JetStream: env.JS, Operator: &fakeOperator{}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
	return srv, env.JS
}

// bigEvent returns the JSON body of a fleet event of about n bytes, the
// largest the dashboard relays whole being 8 KiB.
func bigEvent(i, n int) []byte {
	return fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", n))
}

// liveStream opens GET /api/events and reads past the snapshot.
func liveStream(t *testing.T, ctx context.Context, addr string) (*http.Response, sseReader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	sse := sseReader{bufio.NewReader(res.Body)}
	name, _ := sse.next(t)
	require.Equal(t, "snapshot", name)
	return res, sse
}

// TestLiveWriteDeadlineIsPerWrite: a dashboard that reads but was sent
// nothing for longer than LiveWriteTimeout still gets the next event, one
// larger than the server's write buffers included: the deadline is set
// before each write, not left over from the last.
func TestLiveWriteDeadlineIsPerWrite(t *testing.T) {
	t.Parallel()
	const writeTimeout = 200 * time.Millisecond
	srv, js := liveServer(t, admin.Config{LiveWriteTimeout: writeTimeout, Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sse := liveStream(t, ctx, srv.Addr())

	for i := range 3 {
		// What is tested is time passing without a write: the last
		// deadline lapses.
		time.Sleep(2 * writeTimeout)
		_, err := js.Publish(ctx, "baldur.event.chaos.big", bigEvent(i, 7<<10))
		require.NoError(t, err)
		name, data := sse.next(t)
		require.Equal(t, "event", name)
		var ev admin.RecentEvent
		require.NoError(t, json.Unmarshal(data, &ev))
		require.JSONEq(t, string(bigEvent(i, 7<<10)), string(ev.Data), "event %d arrives whole", i)
	}
	require.Equal(t, 1, srv.LiveClients())
	require.Equal(t, admin.LiveStats{Clients: 1}, srv.LiveStats(), "nothing was dropped")
}

// TestLiveClientThatStopsReadingIsDropped: a live dashboard on a socket
// that never reads is dropped once its buffers are full and a write passes
// LiveWriteTimeout: its slot is free again (a new dashboard connects where
// the cap had refused one), its connection is closed, and a dashboard that
// reads got every event meanwhile and is still served.
func TestLiveClientThatStopsReadingIsDropped(t *testing.T) {
	t.Parallel()
	srv, js := liveServer(t, admin.Config{MaxLiveClients: 2, LiveWriteTimeout: 300 * time.Millisecond, Heartbeat: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := srv.Addr()

	// The stalled dashboard: a small receive buffer, a request, no read.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	stalled := c.(*net.TCPConn)
	t.Cleanup(func() { _ = stalled.Close() })
	require.NoError(t, stalled.SetReadBuffer(4<<10))
	_, err = io.WriteString(stalled, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.LiveClients() == 1 }, 10*time.Second, 5*time.Millisecond)

	// The reading dashboard counts the events it gets.
	_, sse := liveStream(t, ctx, addr)
	require.Equal(t, 2, srv.LiveClients())
	got := make(chan int, 1<<14)
	go func() {
		defer close(got)
		for {
			var name string
			var line string
			for {
				l, err := sse.r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimRight(l, "\n")
				if n, ok := strings.CutPrefix(line, "event: "); ok {
					name = n
				}
				if strings.HasPrefix(line, "data: ") {
					break
				}
			}
			var ev admin.RecentEvent
			if name != "event" || json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) != nil {
				continue
			}
			var body struct {
				I int `json:"i"`
			}
			if json.Unmarshal(ev.Data, &body) == nil {
				got <- body.I
			}
		}
	}()
	full, err := http.Get("http://" + addr + "/api/events")
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, full.StatusCode, "both slots are taken")
	require.NoError(t, full.Body.Close())

	// Events of 7 KiB, in batches the reader keeps up with, until the
	// stalled dashboard's buffers are full and it is dropped.
	published, received := 0, 0
	for srv.LiveClients() == 2 {
		require.Less(t, published, 4000, "the stalled dashboard is still served after %d events (%d MiB)", published, published*7>>10)
		for range 50 {
			_, err := js.Publish(ctx, "baldur.event.chaos.big", bigEvent(published, 7<<10))
			require.NoError(t, err)
			published++
		}
		for received < published {
			select {
			case i, ok := <-got:
				require.True(t, ok, "the reading dashboard was dropped after %d events", received)
				require.Equal(t, received, i, "the reading dashboard gets every event, in order")
				received++
			case <-ctx.Done():
				t.Fatalf("the reading dashboard got %d of %d events", received, published)
			}
		}
	}
	t.Logf("the stalled dashboard was dropped after %d events of 7 KiB", published)
	require.Equal(t, 1, srv.LiveClients(), "the reader is still served")
	st := srv.LiveStats()
	require.EqualValues(t, 1, st.DroppedBehind+st.DroppedStalled, "one drop counted: %+v", st)
	t.Logf("live stats after the drop: %+v", st)

	// Its slot is free: a new dashboard connects.
	liveStream(t, ctx, addr)
	require.Equal(t, 2, srv.LiveClients())

	// The server reset the stalled connection: a read ends at once.
	require.NoError(t, stalled.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.Copy(io.Discard, stalled)
	require.Truef(t, err == nil || errors.Is(err, syscall.ECONNRESET), "the server reset the stalled dashboard's connection (EOF or reset), the client does not time out: %v", err)

	// And the reader still gets what follows.
	_, err = js.Publish(ctx, "baldur.event.chaos.big", bigEvent(published, 10))
	require.NoError(t, err)
	select {
	case i := <-got:
		require.Equal(t, published, i)
	case <-ctx.Done():
		t.Fatal("the reading dashboard got nothing after the drop")
	}
}
