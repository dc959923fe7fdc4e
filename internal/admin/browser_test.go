package admin_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
)

// dashboardToken is the admin token of the dashboards the browser tests
// serve.
const dashboardToken = "browser-test-token"

// serveDashboard serves the admin API and dashboard over fleet, with rw's
// store for the audit log, until the test ends.
func serveDashboard(t *testing.T, fleet *opstest.Fleet, rw *opstest.Replay) *admin.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
	defer cancel()
	nc := fleet.NATS.Connect(t)
	ops, err := opsclient.New(ctx, nc, opsclient.WithSource("admin-test"), opsclient.WithAuditStore(rw.Store))
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", AdminToken: dashboardToken, DLQPoll: 200 * time.Millisecond},
		admin.Deps{JetStream: js, Operator: ops})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
		defer cancel()
		require.NoError(t, srv.Stop(ctx))
	})
	return srv
}

// screenshotEnv, set to 1, makes the browser test write docs/dashboard.png.
const screenshotEnv = "BALDUR_UPDATE_SCREENSHOT"

// report publishes an outcome report for svc as a service's node would.
func report(t *testing.T, js jetstream.JetStream, svc, node string, r events.OutcomeReport) {
	t.Helper()
	msg, err := events.NewMsg(events.MustOutcomeSubject(svc), events.NewEnvelope(events.TypeOutcome, uuid.New(), node, time.Now()), r)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
	defer cancel()
	_, err = js.PublishMsg(ctx, msg)
	require.NoError(t, err)
}

// TestDashboardInBrowser loads the dashboard in headless Chromium against a
// real breaker-worker and replay-worker: a breaker that trips shows OPEN
// without a reload, and forcing it closed from the page (token and reason
// asked for, a wrong token refused) changes it on the page and in KV; a
// threshold override set from the page lands in the breaker's KV value; and
// raising the emergency level turns the governance banner to a warning; an
// entry needing review is listed and resolved from the page.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)

	fleet := opstest.NewFleet(t)
	fleet.StartBreakerWorker(t, "bw-1")
	rw := fleet.StartReplayWorker(t, "rw-1")
	for _, msg := range []string{"upstream timeout", "card processor 503", "upstream timeout"} {
		fleet.DeadLetter(t, rw, "payments", msg)
	}
	stuck := fleet.DeadLetter(t, rw, "search", "index unavailable")

	ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
	defer cancel()
	// One entry waits for an operator, as the engine leaves an entry whose
	// retries ran out.
	_, err := rw.Pool.Exec(ctx, `UPDATE dlq_entries SET status = 'requires_review' WHERE id = $1`, stuck)
	require.NoError(t, err)
	srv := serveDashboard(t, fleet, rw)

	in := fleet.NATS.JS
	for _, svc := range []string{"inventory", "orders", "shipping"} {
		report(t, in, svc, svc+"-node-1", events.OutcomeReport{Successes: 120, Failures: 2})
	}

	b.navigate("http://" + srv.Addr() + "/")
	b.waitJS(`document.body.dataset.ready === "true" && document.querySelector("#breaker-orders")`, 20*time.Second, "the live grid")
	b.eval(`window.__sameDocument = true`, nil)
	b.waitJS(`document.querySelector("#dlq-rows tr[data-service=payments]")`, 20*time.Second, "the DLQ depth")
	require.Equal(t, "3", b.text(`#dlq-rows tr[data-service=payments] td.num`))

	// payments fails: 12 failed calls in a row (over minimum_calls and the
	// failure threshold) trip it.
	for range 4 {
		report(t, in, "payments", "payments-node-1", events.OutcomeReport{Successes: 0, Failures: 3, TrailingFailures: 3})
	}
	b.waitJS(`document.querySelector("#breaker-payments .badge").textContent === "OPEN"`, 20*time.Second, "payments to show OPEN")
	var same bool
	b.eval(`window.__sameDocument === true`, &same)
	require.True(t, same, "the page reloaded; the grid must update live")
	b.waitJS(`[...document.querySelectorAll("#events li")].some(li => li.textContent.includes("payments: closed → open"))`, 20*time.Second, "the opened event")

	// Force it closed from the page: a wrong token first.
	b.click(`#breaker-payments button[data-action="close"]`)
	b.waitJS(`document.querySelector("#action-dialog").open`, 5*time.Second, "the action dialog")
	b.typeText("#dlg-token", "not-the-token")
	b.typeText("#dlg-reason", "vendor confirmed the fix")
	b.click("#dlg-confirm")
	b.waitJS(`!document.querySelector("#dlg-error").hidden && document.querySelector("#dlg-error").textContent.includes("admin token")`, 10*time.Second, "the refusal of a wrong token")
	b.typeText("#dlg-token", dashboardToken)
	b.click("#dlg-confirm")
	b.waitJS(`!document.querySelector("#action-dialog").open`, 20*time.Second, "the dialog to close once applied")
	b.waitJS(`document.querySelector("#breaker-payments .badge").textContent === "CLOSED" && document.querySelector("#breaker-payments .mode").textContent === "forced closed"`,
		20*time.Second, "payments to show CLOSED, forced closed")
	require.Contains(t, b.text("#toast"), "payments: closed (forced_closed)")

	e, err := fleet.Topology.Breakers.Get(ctx, "payments")
	require.NoError(t, err)
	var st domain.Breaker
	require.NoError(t, json.Unmarshal(e.Value(), &st))
	require.Equal(t, domain.StateClosed, st.State)
	require.Equal(t, domain.ModeForcedClosed, st.Mode)
	require.NotNil(t, st.Manual)
	require.Equal(t, admin.DefaultActor, st.Manual.Actor)
	require.Equal(t, "vendor confirmed the fix", st.Manual.Reason)

	// A threshold override from the page: the token is saved for the tab,
	// so the dialog asks only for the reason and the thresholds; an empty
	// form is refused before anything is sent.
	b.click(`#breaker-payments button[data-action="override"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && !document.querySelector("#dlg-override-row").hidden && document.querySelector("#dlg-token-row").hidden`,
		5*time.Second, "the override form")
	b.typeText("#dlg-reason", "peak traffic")
	b.click("#dlg-confirm")
	b.waitJS(`!document.querySelector("#dlg-error").hidden && document.querySelector("#dlg-error").textContent.includes("at least one threshold")`, 5*time.Second, "the refusal of an empty override")
	b.typeText("#dlg-ov-threshold", "25")
	b.typeText("#dlg-ov-recovery", "45s")
	b.typeText("#dlg-ttl", "30m")
	b.click("#dlg-confirm")
	b.waitJS(`!document.querySelector("#action-dialog").open`, 20*time.Second, "the override dialog to close once applied")
	b.waitJS(`document.querySelector("#breaker-payments .override-tag") && document.querySelector("#breaker-payments button[data-action='clear-override']")`,
		20*time.Second, "payments to show its override")

	e, err = fleet.Topology.Breakers.Get(ctx, "payments")
	require.NoError(t, err)
	st = domain.Breaker{}
	require.NoError(t, json.Unmarshal(e.Value(), &st))
	require.NotNil(t, st.Override, "the override must be in KV")
	require.NotNil(t, st.Override.FailureThreshold)
	require.Equal(t, 25, *st.Override.FailureThreshold)
	require.NotNil(t, st.Override.RecoveryTimeout)
	require.Equal(t, 45*time.Second, st.Override.RecoveryTimeout.D())
	require.Nil(t, st.Override.FailureRateThreshold)
	require.Equal(t, "peak traffic", st.Override.Reason)

	// The emergency level: the banner turns to a warning.
	require.Contains(t, b.attr("#governance", "class"), "gov-ok")
	b.eval(`document.querySelector("#level-select").value = "2"`, nil)
	b.click("#level-apply")
	b.waitJS(`document.querySelector("#action-dialog").open && document.querySelector("#dlg-title").textContent.includes("2 · high")`, 5*time.Second, "the level dialog")
	b.typeText("#dlg-reason", "database failover")
	b.click("#dlg-confirm")
	b.waitJS(`document.querySelector("#gov-level").textContent === "2 · high" && document.querySelector("#governance").classList.contains("gov-warn")`,
		20*time.Second, "the banner to show level 2")
	b.waitJS(`!document.querySelector("#action-dialog").open`, 5*time.Second, "the level dialog to close")

	// The entry needing review is listed; resolving it with a note from
	// the page takes it off the list and closes it in the store.
	b.waitJS(`document.querySelector("#entry-`+stuck+`")`, 20*time.Second, "the entry needing review")
	b.click(`#entry-` + stuck + ` button[data-action="resolve"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && !document.querySelector("#dlg-note-row").hidden && document.querySelector("#dlg-override-row").hidden`,
		5*time.Second, "the resolve dialog")
	b.typeText("#dlg-reason", "reindexed by hand")
	b.typeText("#dlg-note", "search cluster rebuilt")
	b.click("#dlg-confirm")
	b.waitJS(`!document.querySelector("#action-dialog").open && !document.querySelector("#entry-`+stuck+`") && !document.querySelector("#review-empty").hidden`,
		20*time.Second, "the resolved entry to leave the list")
	got, err := rw.Store.Get(ctx, stuck)
	require.NoError(t, err)
	require.Equal(t, domain.DLQResolved, got.Status)
	require.Equal(t, "search cluster rebuilt", got.ResolutionNote)

	if os.Getenv(screenshotEnv) == "1" {
		// A second service trips so that the picture shows every state.
		for range 3 {
			report(t, in, "search", "search-node-2", events.OutcomeReport{Successes: 1, Failures: 4, TrailingFailures: 4})
		}
		b.waitJS(`document.querySelector("#breaker-search .badge").textContent === "OPEN"`, 20*time.Second, "search to show OPEN")
		b.waitJS(`document.querySelector("#toast").hidden`, 10*time.Second, "the toast to fade")
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), b.screenshot(), 0o644))
	}
}

// TestDashboardOperatorActionsInBrowser drives the rest of the page's
// controls against a real fleet: the token saved from the header form, a
// breaker disabled and another put in metrics-only mode, an override cleared,
// a force close that asks for the backlog's replay, the kill switch turned on
// and off, the backlog and one entry replayed from their forms, and entries
// needing review requeued and discarded. Each action must show its result on
// the page and land in KV or PostgreSQL.
func TestDashboardOperatorActionsInBrowser(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)

	fleet := opstest.NewFleet(t)
	fleet.StartBreakerWorker(t, "bw-1")
	rw := fleet.StartReplayWorker(t, "rw-1")
	var backlog []string
	for range 3 {
		backlog = append(backlog, fleet.DeadLetter(t, rw, "billing", "ledger timeout"))
	}
	billing := fleet.ServeReplay(t, "billing", true)
	requeue := fleet.DeadLetter(t, rw, "search", "index unavailable")
	discard := fleet.DeadLetter(t, rw, "search", "document too large")

	ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
	defer cancel()
	_, err := rw.Pool.Exec(ctx, `UPDATE dlq_entries SET status = 'requires_review', retry_count = max_retries WHERE id = ANY($1)`,
		[]string{requeue, discard})
	require.NoError(t, err)
	srv := serveDashboard(t, fleet, rw)

	in := fleet.NATS.JS
	for _, svc := range []string{"billing", "inventory", "orders"} {
		report(t, in, svc, svc+"-node-1", events.OutcomeReport{Successes: 50})
	}
	breaker := func(svc string) domain.Breaker {
		t.Helper()
		e, err := fleet.Topology.Breakers.Get(ctx, svc)
		require.NoError(t, err)
		var st domain.Breaker
		require.NoError(t, json.Unmarshal(e.Value(), &st))
		return st
	}
	// confirm fills the open dialog's reason and confirms it, then waits
	// for the dialog to close and the toast to say want.
	confirm := func(reason, want string) {
		t.Helper()
		b.waitJS(`document.querySelector("#action-dialog").open`, 5*time.Second, "the dialog for "+want)
		b.typeText("#dlg-reason", reason)
		b.eval(`document.querySelector("#toast").textContent = ""`, nil)
		b.click("#dlg-confirm")
		b.waitJS(`!document.querySelector("#action-dialog").open`, 20*time.Second, "the dialog to close once applied: "+want)
		b.waitJS(`document.querySelector("#toast").textContent.includes(`+jsString(want)+`)`, 10*time.Second, "the toast "+want)
	}

	b.navigate("http://" + srv.Addr() + "/")
	b.waitJS(`document.body.dataset.ready === "true" && document.querySelector("#breaker-orders") && document.querySelector("#breaker-billing")`, 20*time.Second, "the live grid")

	// The token saved from the header form: no dialog asks for it.
	b.typeText("#token", dashboardToken)
	b.click("#token-save")

	// Disable inventory, put orders in metrics-only mode.
	b.click(`#breaker-inventory button[data-action="disable"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && document.querySelector("#dlg-token-row").hidden`, 5*time.Second, "a dialog without the token field")
	confirm("maintenance window", "inventory")
	b.waitJS(`document.querySelector("#breaker-inventory .mode").textContent === "disabled"`, 20*time.Second, "inventory to show disabled")
	require.Equal(t, domain.ModeDisabled, breaker("inventory").Mode)

	b.click(`#breaker-orders button[data-action="metrics-only"]`)
	confirm("shadow rollout", "orders")
	b.waitJS(`document.querySelector("#breaker-orders .mode").textContent === "metrics only"`, 20*time.Second, "orders to show metrics only")
	require.Equal(t, domain.ModeMetricsOnly, breaker("orders").Mode)

	// An override on orders, then cleared from its row.
	b.click(`#breaker-orders button[data-action="override"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && !document.querySelector("#dlg-override-row").hidden`, 5*time.Second, "the override form")
	b.typeText("#dlg-ov-rate", "80")
	confirm("peak traffic", "orders")
	b.waitJS(`document.querySelector("#breaker-orders button[data-action='clear-override']")`, 20*time.Second, "the Clear override button")
	require.NotNil(t, breaker("orders").Override)
	b.click(`#breaker-orders button[data-action="clear-override"]`)
	confirm("peak over", "orders")
	b.waitJS(`!document.querySelector("#breaker-orders .override-tag") && !document.querySelector("#breaker-orders button[data-action='clear-override']")`,
		20*time.Second, "the override to leave the row")
	require.Nil(t, breaker("orders").Override)

	// The kill switch: on (the banner turns critical), then off.
	b.click("#kill-toggle")
	confirm("incident 4711", "kill switch on")
	b.waitJS(`document.querySelector("#gov-kill").textContent === "ON" && document.querySelector("#governance").classList.contains("gov-crit")`,
		20*time.Second, "the banner to show the kill switch")
	b.click("#kill-toggle")
	confirm("incident 4711 over", "kill switch off")
	b.waitJS(`document.querySelector("#gov-kill").textContent === "off" && document.querySelector("#governance").classList.contains("gov-ok")`,
		20*time.Second, "the banner to clear")

	// One entry replayed from the replay form, then the rest of billing's
	// backlog from its row.
	b.typeText("#replay-id", backlog[0])
	b.click(`#replay-one button[type="submit"]`)
	confirm("one more try", "entry "+backlog[0]+": replayed")
	require.EqualValues(t, 1, billing.Delivered())
	b.waitJS(`document.querySelector("#dlq-rows tr[data-service=billing] td.num").textContent === "2"`, 20*time.Second, "billing's backlog of two")
	b.click(`#dlq-rows tr[data-service=billing] button[data-action="replay-batch"]`)
	confirm("ledger back", "replay of billing: 2 of 2 entries")
	for _, id := range backlog {
		e, err := rw.Store.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, domain.DLQReplayed, e.Status, "entry %s", id)
	}
	require.EqualValues(t, 3, billing.Delivered())
	b.waitJS(`document.querySelector("#dlq-rows tr[data-service=billing] button[data-action='replay-batch']").disabled`, 20*time.Second, "the backlog button to be disabled")

	// A force close that asks for the replay of billing's backlog.
	b.click(`#breaker-billing button[data-action="close"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && !document.querySelector("#dlg-replay-row").hidden`, 5*time.Second, "the replay choice")
	b.click("#dlg-replay")
	confirm("ledger fixed", "billing")
	b.waitJS(`document.querySelector("#breaker-billing .mode").textContent === "forced closed"`, 20*time.Second, "billing to show forced closed")
	require.Equal(t, domain.ModeForcedClosed, breaker("billing").Mode)

	// The entries needing review: one requeued, one discarded with a note.
	b.waitJS(`document.querySelector("#entry-`+requeue+`") && document.querySelector("#entry-`+discard+`")`, 20*time.Second, "the entries needing review")
	b.click(`#entry-` + requeue + ` button[data-action="requeue"]`)
	confirm("index rebuilt", "entry "+requeue[:8])
	// The list is drawn again without the requeued entry: the rows move.
	b.waitJS(`!document.querySelector("#entry-`+requeue+`")`, 20*time.Second, "the requeued entry to leave the list")
	b.click(`#entry-` + discard + ` button[data-action="discard"]`)
	b.waitJS(`document.querySelector("#action-dialog").open && !document.querySelector("#dlg-note-row").hidden`, 5*time.Second, "the discard dialog")
	b.typeText("#dlg-note", "over the size limit for good")
	confirm("cannot be indexed", "entry "+discard[:8])
	b.waitJS(`!document.querySelector("#entry-`+discard+`") && !document.querySelector("#review-empty").hidden`, 20*time.Second, "the discarded entry to leave the list")
	got, err := rw.Store.Get(ctx, requeue)
	require.NoError(t, err)
	require.Equal(t, domain.DLQPending, got.Status)
	require.Zero(t, got.RetryCount, "a requeue gives the entry a fresh retry budget")
	got, err = rw.Store.Get(ctx, discard)
	require.NoError(t, err)
	require.Equal(t, domain.DLQRejected, got.Status)
	require.Equal(t, "over the size limit for good", got.ResolutionNote)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
