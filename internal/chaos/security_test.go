//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/breaker"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/fleetstate"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// deployEnv is the environment deploy/nats/*.conf reads (as compose.yaml
// sets it for the nats containers), and the password of each user.
var deployEnv = map[string]string{
	"NATS_SERVER_NAME":         "chaos-security",
	"BALDUR_SERVICE_PASSWORD":  "chaos-service",
	"BALDUR_OPERATOR_PASSWORD": "chaos-operator",
	"BALDUR_ADMIN_PASSWORD":    "chaos-admin",
	"BALDUR_WORKER_PASSWORD":   "chaos-worker",
	"NATS_SYSTEM_PASSWORD":     "chaos-system",
}

var deployPasswords = map[string]string{
	"service":        deployEnv["BALDUR_SERVICE_PASSWORD"],
	"admin":          deployEnv["BALDUR_ADMIN_PASSWORD"],
	"breaker-worker": deployEnv["BALDUR_WORKER_PASSWORD"],
	"replay-worker":  deployEnv["BALDUR_WORKER_PASSWORD"],
}

// startDeployNATS starts an embedded nats-server with the accounts,
// permissions and JetStream settings of deploy/nats, alone on loopback (the
// cluster routes and the monitoring port are dropped).
func startDeployNATS(t *testing.T) string {
	t.Helper()
	for k, v := range deployEnv {
		t.Setenv(k, v)
	}
	loaded, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("chaos: deploy/nats/nats.conf: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{
		Port:     devstack.RandomPort,
		StoreDir: filepath.Join(t.TempDir(), "jetstream"),
		Configure: func(o *server.Options) {
			host, port, dir := o.Host, o.Port, o.StoreDir
			*o = *loaded
			o.Host, o.Port, o.StoreDir = host, port, dir
			o.Cluster = server.ClusterOpts{}
			o.Routes = nil
			o.HTTPPort, o.HTTPHost = 0, ""
			o.NoSigs = true
		},
	})
	if err != nil {
		t.Fatalf("chaos: NATS with the deploy accounts: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// identity is a connection as one user of deploy/nats, with the
// permission violations the server reported to it.
type identity struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream

	mu   sync.Mutex
	errs []string
}

func connectAs(t *testing.T, url, user string) *identity {
	t.Helper()
	id := &identity{user: user}
	nc, err := nats.Connect(url, nats.UserInfo(user, deployPasswords[user]), nats.Name("chaos "+user),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			id.mu.Lock()
			defer id.mu.Unlock()
			id.errs = append(id.errs, err.Error())
		}))
	if err != nil {
		t.Fatalf("chaos: connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	id.nc = nc
	if id.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return id
}

// refused reports whether the server reported a permission violation for
// publishing to subject within a few seconds.
func (id *identity) refused(subject string) bool {
	return id.refusedPrefix(subject + `"`)
}

// refusedPrefix reports whether the server reported a permission violation
// for publishing to a subject that starts with prefix within a few seconds.
func (id *identity) refusedPrefix(prefix string) bool {
	want := `Permissions Violation for Publish to "` + prefix
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		id.mu.Lock()
		for _, e := range id.errs {
			if strings.Contains(e, want) {
				id.mu.Unlock()
				return true
			}
		}
		id.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// shortCtx is the context of a request the server is expected to drop.
func shortCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 500*time.Millisecond)
}

// TestChaosSecurity is scenario 7: a fleet (breaker-worker, replay-worker
// with its DLQ endpoints and audit consumer, admin API) runs on an embedded
// nats-server with the accounts of deploy/nats. Attacks: the service
// identity publishes breaker and governance commands, writes, creates and
// deletes breaker state, calls the DLQ endpoints and reads the DLQ stream;
// admin HTTP writes are sent without the token, with a wrong one and with
// the token elsewhere than the Authorization header; rows of the audit log
// are edited in PostgreSQL. Invariants: every attack is refused (a
// permission violation, 401, or a broken chain reported at the edited row)
// and changes nothing, while the same operations by the rightful identity
// succeed.
func TestChaosSecurity(t *testing.T) {
	// The harness's cluster is not used: the fleet runs on the deploy accounts.
	h := New(t, "security", Options{Nodes: 2, Partitions: 2})
	url := startDeployNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var messages int64

	// The fleet, each part as its own user.
	bw := connectAs(t, url, "breaker-worker")
	top, err := topology.Ensure(ctx, bw.js, topology.Config{Partitions: 2})
	if err != nil {
		t.Fatalf("chaos: topology as breaker-worker: %v", err)
	}
	if _, err := topology.EnsureReplay(ctx, bw.js, top.Config); err != nil {
		t.Fatalf("chaos: replay topology as breaker-worker: %v", err)
	}
	bwView, err := fleetstate.Watch(ctx, bw.js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bwView.Stop)
	worker, err := breaker.New(bw.js, breaker.Config{Topology: top, Node: "sec-bw", Configs: bwView, Governance: bwView,
		Conn: bw.nc, Logger: h.logger("sec-bw")})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatalf("chaos: breaker-worker as breaker-worker: %v", err)
	}
	t.Cleanup(func() { stopWith(worker.Stop) })

	rw := connectAs(t, url, "replay-worker")
	rwView, err := fleetstate.Watch(ctx, rw.js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rwView.Stop)
	pool, err := pgxpool.New(ctx, h.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rcfg := replay.Config{NodeID: "sec-rw", Retry: ChaosRetry}.WithDefaults()
	rworker, err := replay.New(rcfg, replay.Deps{Store: store.New(pool, store.WithRetryPolicy(rcfg.Retry), store.WithAuditKey(testenv.AuditKey)),
		NC: rw.nc, JS: rw.js, View: replay.FleetView(rwView), Logger: h.logger("sec-rw")})
	if err != nil {
		t.Fatal(err)
	}
	if err := rworker.Start(ctx); err != nil {
		t.Fatalf("chaos: replay-worker as replay-worker: %v", err)
	}
	t.Cleanup(func() { stopWith(rworker.Stop) })

	const token = "chaos-admin-token"
	adm := connectAs(t, url, "admin")
	ops, err := opsclient.New(ctx, adm.nc, opsclient.WithSource("chaos-admin"), opsclient.WithApplyTimeout(Wait), opsclient.WithAuditStore(h.Store))
	if err != nil {
		t.Fatalf("chaos: operator client as admin: %v", err)
	}
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", AdminToken: token, Logger: h.logger("sec-admin")},
		admin.Deps{JetStream: ops.JetStream(), Operator: ops})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("chaos: admin server: %v", err)
	}
	t.Cleanup(func() { stopWith(srv.Stop) })
	base := "http://" + srv.Addr()

	// A service at work: outcome reports and one dead letter.
	const svc = "payments"
	svcID := connectAs(t, url, "service")
	client, err := baldur.Connect(ctx, svcID.nc, baldur.WithNodeID("sec-app"), baldur.WithFlushInterval(20*time.Millisecond),
		baldur.WithLogger(h.logger("sec-app")))
	if err != nil {
		t.Fatalf("chaos: SDK as service: %v", err)
	}
	t.Cleanup(func() { _ = client.Close(context.Background()) })
	for range 5 {
		client.Record(svc, baldur.Success(time.Millisecond))
		messages++
	}
	if err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	dlID := "5f0c3c52-6f1e-4d7b-9a8e-0d4b8b0f6a11"
	if err := client.DeadLetter(ctx, baldur.FailedOperation{ID: dlID, Service: svc, Operation: "charge",
		IdempotencyKey: "order-1", Request: map[string]int{"amount": 42}}); err != nil {
		t.Fatalf("chaos: dead letter as service: %v", err)
	}
	messages++
	states := breaker.NewStateStore(top.Breakers, bw.js, "chaos-checker", nil)
	breakerNow := func() (domain.Breaker, uint64) {
		b, rev, err := states.Get(ctx, svc)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("chaos: read breaker: %v", err)
		}
		return b, rev
	}
	if !h.Until(Wait, 20*time.Millisecond, func() bool { b, _ := breakerNow(); return b.Window.Calls() == 5 }) {
		t.Fatal("chaos: the service's reports were never folded")
	}
	if !h.Until(Wait, 50*time.Millisecond, func() bool { _, err := h.Store.Get(ctx, dlID); return err == nil }) {
		t.Fatal("chaos: the service's dead letter was never ingested")
	}
	if v := svcID.violations(); len(v) > 0 {
		t.Fatalf("chaos: the SDK needed a permission the service lacks: %v", v)
	}
	before, rev := breakerNow()

	attack := func(name string, refusedOK bool, detail string) {
		messages++
		h.Fault("attack", name)
		if !refusedOK {
			h.Violation("attack %q was not refused: %s", name, detail)
		}
	}

	// NATS: the service identity.
	ctrl := events.MustControlSubject(svc)
	msg, err := events.NewMsg(ctrl, events.NewEnvelopeRandomID(events.TypeControl, "intruder", time.Now()),
		events.BreakerCommand{Action: domain.ActionOpen, Actor: "intruder", Reason: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := shortCtx()
	_, err = svcID.js.PublishMsg(sctx, msg)
	scancel()
	attack("service publishes a breaker command", err != nil && svcID.refused(ctrl), fmt.Sprintf("publish error %v", err))

	err = svcID.nc.Publish(events.SubjectGovernance, []byte(`{"action":"kill_switch_on","actor":"intruder","reason":"chaos"}`))
	attack("service publishes a governance command", err == nil && svcID.refused(events.SubjectGovernance), fmt.Sprintf("publish error %v", err))

	kv, err := svcID.js.KeyValue(ctx, topology.BucketBreakers)
	if err != nil {
		t.Fatalf("chaos: the service may look baldur_breakers up: %v", err)
	}
	for _, w := range []struct {
		name string
		key  string
		do   func(context.Context) error
	}{
		{"service puts breaker state", svc, func(c context.Context) error { _, err := kv.Put(c, svc, []byte(`{"state":"OPEN"}`)); return err }},
		{"service creates a breaker", "forged", func(c context.Context) error {
			_, err := kv.Create(c, "forged", []byte(`{"state":"OPEN"}`))
			return err
		}},
		{"service updates breaker state by revision", svc, func(c context.Context) error {
			_, err := kv.Update(c, svc, []byte(`{"state":"OPEN"}`), rev)
			return err
		}},
		{"service deletes a breaker", svc, func(c context.Context) error { return kv.Delete(c, svc) }},
		{"service purges a breaker", svc, func(c context.Context) error { return kv.Purge(c, svc) }},
	} {
		sctx, scancel := shortCtx()
		err := w.do(sctx)
		scancel()
		attack(w.name, err != nil && svcID.refused("$KV."+topology.BucketBreakers+"."+w.key), fmt.Sprintf("error %v", err))
	}

	for _, op := range []events.DLQOp{events.DLQOpStats, events.DLQOpList, events.DLQOpGet, events.DLQOpResolve} {
		subject, err := events.APIDLQSubject(op)
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"id":%q,"actor":"intruder","reason":"chaos"}`, dlID)
		if op == events.DLQOpStats || op == events.DLQOpList {
			body = `{}`
		}
		_, err = svcID.nc.Request(subject, []byte(body), 500*time.Millisecond)
		attack("service calls "+subject, err != nil && svcID.refused(subject), fmt.Sprintf("request error %v", err))
	}
	sctx, scancel = shortCtx()
	_, err = svcID.js.OrderedConsumer(sctx, topology.StreamDLQ, jetstream.OrderedConsumerConfig{})
	scancel()
	attack("service reads the DLQ stream", err != nil && svcID.refusedPrefix("$JS.API.CONSUMER.CREATE."+topology.StreamDLQ), fmt.Sprintf("error %v", err))
	sctx, scancel = shortCtx()
	err = svcID.js.DeleteStream(sctx, topology.StreamDLQ)
	scancel()
	attack("service deletes the DLQ stream", err != nil && svcID.refused("$JS.API.STREAM.DELETE."+topology.StreamDLQ), fmt.Sprintf("error %v", err))

	after, rev2 := breakerNow()
	if rev2 != rev || after.State != before.State {
		h.Violation("breaker %s changed under the service's attacks: revision %d → %d, %s → %s", svc, rev, rev2, before.State, after.State)
	}
	if _, frev, err := states.Get(ctx, "forged"); err != nil || frev != 0 {
		h.Violation("a forged breaker exists (revision %d, err %v)", frev, err)
	}
	if e, err := h.Store.Get(ctx, dlID); err != nil || e.Status != domain.DLQPending {
		h.Violation("dead letter %s changed under the service's attacks: %s, %v", dlID, e.Status, err)
	}
	if gs, err := ops.GovernanceState(ctx); err != nil || gs.KillSwitch.Active {
		h.Violation("governance changed under the service's attacks: %+v, %v", gs, err)
	}
	// The rightful identity may do what the service may not.
	var stats replay.DLQStatsReply
	if err := ops.DLQ(ctx, events.DLQOpStats, nil, &stats); err != nil || stats.Counts[svc][domain.DLQPending] != 1 {
		t.Fatalf("chaos: DLQ stats as admin: %+v, %v", stats, err)
	}

	// Admin HTTP: writes without the token.
	writes := []struct{ path, body string }{
		{"/api/breakers/" + svc + "/open", `{"reason":"chaos"}`},
		{"/api/breakers/" + svc + "/disable", `{"reason":"chaos"}`},
		{"/api/governance/kill-switch", `{"enabled":true,"reason":"chaos"}`},
		{"/api/governance/emergency", `{"level":3,"reason":"chaos"}`},
		{"/api/dlq/" + dlID + "/discard", `{"reason":"chaos"}`},
		{"/api/dlq/replay-batch", `{"reason":"chaos"}`},
	}
	creds := []struct {
		name string
		set  func(*http.Request)
	}{
		{"no token", func(*http.Request) {}},
		{"a wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer not-"+token) }},
		{"the token with another scheme", func(r *http.Request) { r.Header.Set("Authorization", "Basic "+token) }},
		{"the token as basic auth", func(r *http.Request) { r.SetBasicAuth("admin", token) }},
		{"the token in the query", func(r *http.Request) { r.URL.RawQuery = "token=" + token + "&access_token=" + token }},
		{"the token in a cookie", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "token", Value: token}) }},
		{"an empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }},
	}
	for _, w := range writes {
		for _, c := range creds {
			status, body := httpDo(t, ctx, base+w.path, w.body, c.set)
			attack(fmt.Sprintf("POST %s with %s", w.path, c.name), status == http.StatusUnauthorized,
				fmt.Sprintf("status %d: %s", status, body))
		}
	}
	after, rev2 = breakerNow()
	if rev2 != rev || after.State != before.State {
		h.Violation("breaker %s changed under unauthenticated admin writes: revision %d → %d", svc, rev, rev2)
	}
	if e, err := h.Store.Get(ctx, dlID); err != nil || e.Status != domain.DLQPending {
		h.Violation("dead letter %s changed under unauthenticated admin writes: %s, %v", dlID, e.Status, err)
	}
	// With the token, the same writes work (and are audited).
	auth := func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set(admin.ActorHeader, "alice")
	}
	for _, p := range []struct{ path, body string }{
		{"/api/breakers/" + svc + "/open", `{"reason":"incident 7"}`},
		{"/api/breakers/" + svc + "/auto", `{"reason":"incident 7 over"}`},
		{"/api/dlq/" + dlID + "/resolve", `{"reason":"fixed by hand","note":"re-sent manually"}`},
	} {
		if status, body := httpDo(t, ctx, base+p.path, p.body, auth); status != http.StatusOK {
			t.Fatalf("chaos: POST %s with the token: %d %s", p.path, status, body)
		}
		messages++
	}

	// The audit chain: intact, then edited rows are found.
	var recs []domain.AuditRecord
	if !h.Until(Wait, 50*time.Millisecond, func() bool {
		recs, err = h.Store.ListAudit(ctx, "", 0, 1000)
		return err == nil && len(recs) >= 3
	}) {
		t.Fatalf("chaos: the audit log has %d records, want at least 3 (%v)", len(recs), err)
	}
	verify := func() (int, string) { return httpGet(t, ctx, base+"/api/audit/verify") }
	if status, body := verify(); status != http.StatusOK {
		t.Fatalf("chaos: the untouched audit chain does not verify: %d %s", status, body)
	}
	edits := []struct{ name, column, value string }{
		{"reason", "reason", "nothing happened"},
		{"actor", "actor", "mallory"},
		{"details", "details", `{"forged":true}`},
	}
	for i, e := range edits {
		seq := recs[(i*len(recs))/len(edits)].Seq
		var orig *string
		if err := pool.QueryRow(ctx, "SELECT "+e.column+"::text FROM audit_log WHERE seq = $1", seq).Scan(&orig); err != nil {
			t.Fatal(err)
		}
		cast := ""
		if e.column == "details" {
			cast = "::jsonb"
		}
		if _, err := pool.Exec(ctx, "UPDATE audit_log SET "+e.column+" = $1"+cast+" WHERE seq = $2", e.value, seq); err != nil {
			t.Fatal(err)
		}
		status, body := verify()
		attack(fmt.Sprintf("edit the %s of audit record %d", e.name, seq),
			status == http.StatusConflict && strings.Contains(body, fmt.Sprintf("seq %d", seq)),
			fmt.Sprintf("verify answered %d %s", status, body))
		if _, err := pool.Exec(ctx, "UPDATE audit_log SET "+e.column+" = $1"+cast+" WHERE seq = $2", orig, seq); err != nil {
			t.Fatal(err)
		}
		if status, body := verify(); status != http.StatusOK {
			h.Violation("the audit chain does not verify once record %d is restored: %d %s", seq, status, body)
		}
	}
	mid := recs[len(recs)/2].Seq
	if _, err := pool.Exec(ctx, "DELETE FROM audit_log WHERE seq = $1", mid); err != nil {
		t.Fatal(err)
	}
	status, body := verify()
	attack(fmt.Sprintf("delete audit record %d", mid), status == http.StatusConflict, fmt.Sprintf("verify answered %d %s", status, body))

	entries, err := h.Store.Count(ctx, store.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	h.Finish(Totals{Messages: messages, Entries: entries})
}

// violations returns the permission violations reported so far.
func (id *identity) violations() []string {
	id.mu.Lock()
	defer id.mu.Unlock()
	var out []string
	for _, e := range id.errs {
		if strings.Contains(e, "Permissions Violation") {
			out = append(out, e)
		}
	}
	return out
}

// stopWith stops a component within Wait.
func stopWith(stop func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	_ = stop(ctx)
}

// httpDo POSTs body to url after set adjusted the request, and returns the
// status and the body of the answer.
func httpDo(t *testing.T, ctx context.Context, url, body string, set func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	set(req)
	return roundTrip(t, req)
}

// httpGet GETs url.
func httpGet(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return roundTrip(t, req)
}

func roundTrip(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("chaos: %s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(b)
}
