package deploytest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/auditanchor"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/topology"
)

// waitFor bounds every wait on the embedded server.
const waitFor = 10 * time.Second

// loadNATSConfig parses deploy/nats/nats.conf (with accounts.conf) as a
// nats-server of the compose cluster would.
func loadNATSConfig(t *testing.T) *server.Options {
	t.Helper()
	o, err := server.ProcessConfigFile(path("deploy", "nats", "nats.conf"))
	require.NoError(t, err, "deploy/nats/nats.conf must load")
	return o
}

// startNATS starts an embedded nats-server with the accounts and JetStream
// settings of deploy/nats, alone on loopback: the cluster block and the
// monitoring port are dropped and the store is a temporary directory.
func startNATS(t *testing.T) string {
	t.Helper()
	loaded := loadNATSConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{
		Port:     devstack.RandomPort,
		StoreDir: filepath.Join(t.TempDir(), "jetstream"),
		Configure: func(o *server.Options) {
			host, port, store := o.Host, o.Port, o.StoreDir
			*o = *loaded
			o.Host, o.Port, o.StoreDir = host, port, store
			o.Cluster = server.ClusterOpts{}
			o.Routes = nil
			o.HTTPPort = 0
			o.HTTPHost = ""
			o.NoSigs = true
		},
	})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// identity is a connection as one NATS user, with the asynchronous errors
// (permission violations) the server sent it.
type identity struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream

	mu   sync.Mutex
	errs []error
}

func connectAs(t *testing.T, url, user string) *identity {
	t.Helper()
	id := &identity{user: user}
	nc, err := nats.Connect(url, nats.UserInfo(user, passwords[user]), nats.Name("deploytest "+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			id.mu.Lock()
			defer id.mu.Unlock()
			id.errs = append(id.errs, err)
		}))
	require.NoError(t, err, "connect as %s", user)
	t.Cleanup(nc.Close)
	id.nc = nc
	id.js, err = jetstream.New(nc)
	require.NoError(t, err)
	return id
}

// violations returns the permission violations received so far.
func (id *identity) violations() []string {
	id.mu.Lock()
	defer id.mu.Unlock()
	var out []string
	for _, err := range id.errs {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			out = append(out, err.Error())
		}
	}
	return out
}

// requireRefused waits until the server reported a permission violation
// for publishing to subject.
func (id *identity) requireRefused(t *testing.T, subject string) {
	t.Helper()
	want := `Permissions Violation for Publish to "` + subject + `"`
	require.Eventually(t, func() bool {
		for _, v := range id.violations() {
			if strings.Contains(v, want) {
				return true
			}
		}
		return false
	}, waitFor, 10*time.Millisecond, "%s: no permission violation for %s; got %v", id.user, subject, id.violations())
}

// fleet is a running breaker-worker as the breaker-worker user.
type fleet struct {
	worker *identity
	top    *topology.Topology
}

func startFleet(t *testing.T, url string) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	w := connectAs(t, url, "breaker-worker")
	top, err := topology.Ensure(ctx, w.js, topology.Config{Partitions: 2})
	require.NoError(t, err, "topology.Ensure as breaker-worker")
	_, err = topology.EnsureReplay(ctx, w.js, topology.Config{})
	require.NoError(t, err, "topology.EnsureReplay as breaker-worker")
	view, err := fleetstate.Watch(ctx, w.js)
	require.NoError(t, err)
	t.Cleanup(view.Stop)
	bw, err := breaker.New(w.js, breaker.Config{
		Topology: top, Node: "deploytest-worker", Configs: view, Governance: view, Conn: w.nc,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, bw.Start(ctx), "breaker-worker as breaker-worker")
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = bw.Stop(sctx)
	})
	return &fleet{worker: w, top: top}
}

// breakerState reads svc's breaker as the worker.
func (f *fleet) breakerState(t *testing.T, svc string) (domain.Breaker, uint64, bool) {
	t.Helper()
	e, err := f.top.Breakers.Get(t.Context(), svc)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return domain.Breaker{}, 0, false
	}
	require.NoError(t, err)
	var b domain.Breaker
	require.NoError(t, json.Unmarshal(e.Value(), &b))
	return b, e.Revision(), true
}

func TestNATSConfigLoads(t *testing.T) {
	t.Parallel()
	o := loadNATSConfig(t)
	require.Equal(t, natsEnv["NATS_SERVER_NAME"], o.ServerName)
	require.True(t, o.JetStream, "JetStream is enabled")
	require.True(t, o.SyncAlways, "sync_interval: always (docs/operations.md, Durability)")
	require.Len(t, o.Routes, 3, "routes to the three nodes")
	require.Equal(t, "SYS", o.SystemAccount)
	users := map[string]*server.User{}
	for _, u := range o.Users {
		users[u.Username] = u
	}
	for name := range passwords {
		require.Contains(t, users, name)
		require.Equal(t, "BALDUR", users[name].Account.Name, "user %s", name)
		require.NotNil(t, users[name].Permissions, "user %s has permissions", name)
	}
}

func TestNATSPermissions(t *testing.T) {
	t.Parallel()
	url := startNATS(t)
	f := startFleet(t, url)
	ctx, cancel := context.WithTimeout(t.Context(), 2*waitFor)
	defer cancel()

	const svc = "payments"
	svcID := connectAs(t, url, "service")
	client, err := baldur.Connect(ctx, svcID.nc, baldur.WithNodeID("deploytest-app"),
		baldur.WithFlushInterval(20*time.Millisecond), baldur.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err, "baldur.Connect as service (watches baldur_breakers, baldur_config and baldur_governance)")
	t.Cleanup(func() { _ = client.Close(context.Background()) })

	t.Run("service reports outcomes", func(t *testing.T) {
		for range 3 {
			require.True(t, client.Allow(svc))
			client.Record(svc, baldur.Success(time.Millisecond))
		}
		client.Record(svc, baldur.Failure(time.Millisecond, "TIMEOUT"))
		require.NoError(t, client.Flush(ctx))
		require.Eventually(t, func() bool {
			b, _, ok := f.breakerState(t, svc)
			return ok && b.Window.Calls() == 4
		}, waitFor, 10*time.Millisecond, "the breaker-worker folds the service's reports")
		require.Eventually(t, func() bool {
			_, ok := client.State(svc)
			return ok
		}, waitFor, 10*time.Millisecond, "the service sees the breaker through its KV watch")
	})

	t.Run("service submits a dead letter", func(t *testing.T) {
		require.NoError(t, client.DeadLetter(ctx, baldur.FailedOperation{
			Service: svc, Operation: "charge", IdempotencyKey: "order-1", Request: map[string]int{"amount": 42},
		}), "the dead letter is acknowledged by BALDUR_DLQ")
		s, err := f.worker.js.Stream(ctx, topology.StreamDLQ)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, info.State.Msgs)
	})

	t.Run("service serves replays", func(t *testing.T) {
		got := make(chan baldur.ReplayRequest, 1)
		stop, err := client.HandleReplay(svc, func(_ context.Context, req baldur.ReplayRequest) error {
			got <- req
			return nil
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = stop() })
		// What the replay-worker sends, as the replay-worker user.
		rw := connectAs(t, url, "replay-worker")
		msg, err := events.NewMsg(events.MustReplaySubject(svc),
			events.NewEnvelopeRandomID(events.TypeReplay, "deploytest-replay", time.Now()),
			events.ReplayDelivery{Service: svc, DLQID: "dlq-1", Attempt: 1, Operation: "charge", Request: json.RawMessage(`{"amount":42}`)})
		require.NoError(t, err)
		resp, err := rw.nc.RequestMsgWithContext(ctx, msg)
		require.NoError(t, err, "the service's replay handler answers")
		var reply events.ReplayReply
		require.NoError(t, json.Unmarshal(resp.Data, &reply))
		require.True(t, reply.OK, "reply %+v", reply)
		require.Equal(t, "dlq-1", (<-got).DLQID)
		require.Empty(t, rw.violations())
	})

	t.Run("service needs no other permission", func(t *testing.T) {
		require.Empty(t, svcID.violations(), "the SDK ran into a permission the service identity lacks")
	})

	t.Run("service cannot publish a breaker command", func(t *testing.T) {
		before, rev, _ := f.breakerState(t, svc)
		subject := events.MustControlSubject(svc)
		msg, err := events.NewMsg(subject, events.NewEnvelopeRandomID(events.TypeControl, "intruder", time.Now()),
			events.BreakerCommand{Action: domain.ActionOpen, Actor: "intruder", Reason: "test"})
		require.NoError(t, err)
		_, err = svcID.js.PublishMsg(short(t), msg)
		require.Error(t, err, "the publish is never acknowledged")
		svcID.requireRefused(t, subject)
		requireNoMessage(t, f.worker.js, topology.StreamInput, "baldur.in.*.control."+svc)
		after, rev2, _ := f.breakerState(t, svc)
		require.Equal(t, rev, rev2)
		require.Equal(t, before.State, after.State)
	})

	t.Run("service cannot publish a governance command", func(t *testing.T) {
		require.NoError(t, svcID.nc.Publish(events.SubjectGovernance, []byte(`{"action":"kill_switch"}`)))
		svcID.requireRefused(t, events.SubjectGovernance)
		requireNoMessage(t, f.worker.js, topology.StreamInput, events.SubjectGovernance)
	})

	t.Run("service cannot write breaker state", func(t *testing.T) {
		kv, err := svcID.js.KeyValue(ctx, topology.BucketBreakers)
		require.NoError(t, err, "the service may look the bucket up")
		_, rev, ok := f.breakerState(t, svc)
		require.True(t, ok)
		_, err = kv.Put(short(t), svc, []byte(`{"state":"OPEN"}`))
		require.Error(t, err)
		svcID.requireRefused(t, "$KV.baldur_breakers."+svc)
		_, err = kv.Create(short(t), "forged", []byte(`{"state":"OPEN"}`))
		require.Error(t, err)
		svcID.requireRefused(t, "$KV.baldur_breakers.forged")
		_, rev2, _ := f.breakerState(t, svc)
		require.Equal(t, rev, rev2, "no write reached the bucket")
		_, _, ok = f.breakerState(t, "forged")
		require.False(t, ok)
		require.Error(t, kv.Delete(short(t), svc))
		_, rev2, ok = f.breakerState(t, svc)
		require.True(t, ok, "the breaker is not deleted")
		require.Equal(t, rev, rev2)
	})

	t.Run("service cannot call the DLQ API", func(t *testing.T) {
		subject, err := events.APIDLQSubject(events.DLQOpStats)
		require.NoError(t, err)
		_, err = svcID.nc.Request(subject, []byte(`{}`), 200*time.Millisecond)
		require.Error(t, err)
		svcID.requireRefused(t, subject)
	})

	t.Run("service cannot delete or purge streams", func(t *testing.T) {
		require.Error(t, svcID.js.DeleteStream(short(t), topology.StreamInput))
		svcID.requireRefused(t, "$JS.API.STREAM.DELETE."+topology.StreamInput)
		_, err := f.worker.js.Stream(ctx, topology.StreamInput)
		require.NoError(t, err, "the stream is still there")
	})

	for _, user := range []string{"operator", "admin"} {
		t.Run(user+" publishes commands and cannot write breaker state", func(t *testing.T) {
			op := connectAs(t, url, user)
			ops, err := opsclient.New(ctx, op.nc, opsclient.WithSource("deploytest-"+user), opsclient.WithApplyTimeout(waitFor))
			require.NoError(t, err)
			applied, err := ops.BreakerCommand(ctx, svc, events.BreakerCommand{Action: domain.ActionOpen, Actor: user, Reason: "deploytest"})
			require.NoError(t, err, "the breaker-worker applies the %s's command", user)
			require.Equal(t, domain.StateOpen, applied.Breaker.State)
			_, err = ops.BreakerCommand(ctx, svc, events.BreakerCommand{Action: domain.ActionAuto, Actor: user, Reason: "deploytest"})
			require.NoError(t, err)
			_, err = ops.ConfigSet(ctx, user+"-svc", []byte(`{"failure_threshold":7}`))
			require.NoError(t, err, "the %s writes config", user)
			require.Empty(t, op.violations(), "the operator tools ran into a permission the %s lacks", user)

			if user == "admin" {
				// The admin API and dashboard run as this user: its live
				// feeds start and its probe path answers.
				srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)},
					admin.Deps{JetStream: ops.JetStream(), Operator: ops})
				require.NoError(t, err)
				require.NoError(t, srv.StartFeeds(ctx), "the admin's live feeds as the admin user")
				rec := httptest.NewRecorder()
				srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, adminProbes[0], nil))
				require.Equal(t, http.StatusOK, rec.Code, adminProbes[0])
				require.Empty(t, op.violations())
			}

			// The audit heads: the operator reads them (audit verify) and
			// can neither anchor a forged one nor delete one.
			head := domain.AuditRecord{Seq: 1, At: time.Now(), Hash: make([]byte, 32)}
			require.NoError(t, auditanchor.NewPublisher(f.worker.js, slog.New(slog.DiscardHandler)).Publish(ctx, head),
				"a worker anchors the audit log's head")
			heads, err := auditanchor.Read(ctx, op.js)
			require.NoError(t, err, "the %s reads the anchored heads", user)
			require.Positive(t, heads.Anchors.Len())
			require.Empty(t, op.violations())
			forged, err := events.NewAuditHeadMsg(events.NewAuditHead(domain.AuditRecord{Seq: 1 << 40, At: time.Now(), Hash: make([]byte, 32)}))
			require.NoError(t, err)
			_, err = op.js.PublishMsg(short(t), forged)
			require.Error(t, err)
			op.requireRefused(t, events.SubjectAuditHead)
			audit, err := f.worker.js.Stream(ctx, topology.StreamAudit)
			require.NoError(t, err)
			require.NoError(t, op.nc.Publish("$JS.API.STREAM.MSG.DELETE."+topology.StreamAudit, []byte(`{"seq":1}`)))
			op.requireRefused(t, "$JS.API.STREAM.MSG.DELETE."+topology.StreamAudit)
			info, err := audit.Info(ctx)
			require.NoError(t, err)
			require.Positive(t, info.State.Msgs, "no head was removed")

			kv, err := op.js.KeyValue(ctx, topology.BucketBreakers)
			require.NoError(t, err)
			_, err = kv.Put(short(t), user+"-forged", []byte(`{}`))
			require.Error(t, err)
			op.requireRefused(t, "$KV.baldur_breakers."+user+"-forged")

			// The workers' consumers are theirs: an operator can neither
			// take dead letters from replay-ingest (pull, ack) nor delete
			// or pull from a worker's durable consumer.
			for _, subj := range []string{
				"$JS.API.CONSUMER.MSG.NEXT." + topology.StreamDLQ + "." + topology.ConsumerReplayIngest,
				"$JS.API.CONSUMER.DELETE." + topology.StreamDLQ + "." + topology.ConsumerReplayIngest,
				"$JS.API.CONSUMER.MSG.NEXT." + topology.StreamInput + "." + topology.ConsumerName(0),
				"$JS.API.CONSUMER.DELETE." + topology.StreamInput + "." + topology.ConsumerName(0),
				"$JS.API.CONSUMER.MSG.NEXT." + topology.StreamEvents + "." + topology.ConsumerReplayTriggers,
				"$JS.API.CONSUMER.DELETE." + topology.StreamEvents + "." + topology.ConsumerReplayTriggers,
				"$JS.API.CONSUMER.DELETE." + topology.StreamEvents + "." + topology.ConsumerAudit,
				"$JS.API.CONSUMER.CREATE." + topology.StreamDLQ + ".stolen",
				"$JS.API.CONSUMER.DURABLE.CREATE." + topology.StreamEvents + ".stolen",
			} {
				_, err := op.nc.Request(subj, []byte(`{"batch":1}`), 500*time.Millisecond)
				require.Error(t, err, subj)
				op.requireRefused(t, subj)
			}
			ack := "$JS.ACK." + topology.StreamDLQ + "." + topology.ConsumerReplayIngest + ".1.1.1.0.0"
			require.NoError(t, op.nc.Publish(ack, []byte("+ACK")))
			op.requireRefused(t, ack)
			for _, c := range []struct{ stream, name string }{
				{topology.StreamDLQ, topology.ConsumerReplayIngest}, {topology.StreamInput, topology.ConsumerName(0)},
				{topology.StreamEvents, topology.ConsumerReplayTriggers}, {topology.StreamEvents, topology.ConsumerAudit},
			} {
				_, err := f.worker.js.Consumer(ctx, c.stream, c.name)
				require.NoError(t, err, "%s/%s is still there", c.stream, c.name)
			}
		})
	}
}

// short returns a context for a request the server is expected to drop:
// it ends after half a second (or with the test).
func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// requireNoMessage asserts that stream holds no message on subject.
func requireNoMessage(t *testing.T, js jetstream.JetStream, stream, subject string) {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	require.NoError(t, err)
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	require.NoError(t, err)
	require.Empty(t, info.State.Subjects, "%s holds a message on %s", stream, subject)
}
