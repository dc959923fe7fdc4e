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
	nc := fleet.NATS.Connect(t)
	ops, err := opsclient.New(ctx, nc, opsclient.WithSource("admin-test"), opsclient.WithAuditStore(rw.Store))
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	const token = "browser-test-token"
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", AdminToken: token, DLQPoll: 200 * time.Millisecond},
		admin.Deps{JetStream: js, Operator: ops})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opstest.WaitFor)
		defer cancel()
		require.NoError(t, srv.Stop(ctx))
	})

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
	b.typeText("#dlg-token", token)
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
