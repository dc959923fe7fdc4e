//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/telemetry"
)

// Bounds of the admin cases.
const (
	// adminIdleClients is how many idle live dashboards and how many
	// stalled connections the admin is given at once.
	adminIdleClients = 40
	// adminAnswerBound is how long the admin may take to answer GET
	// /api/health while it carries them.
	adminAnswerBound = 2 * time.Second
	// adminLiveWriteTimeout is the admin's LiveWriteTimeout, short so that
	// the scenario sees dashboards dropped within seconds.
	adminLiveWriteTimeout = time.Second
	// statsServices is how many services have dead letters in the DLQ
	// stats case; statsBound is how long a page of stats may take.
	statsServices = 20_000
	statsBound    = 5 * time.Second
)

// startAdmin starts the scenario's admin server on a loopback port, with
// an operator client of its own, the token, room for adminIdleClients live
// dashboards and one more, and a short LiveWriteTimeout.
func (b *badInput) startAdmin(ctx context.Context) {
	ops, err := opsclient.New(ctx, b.h.Connect("chaos-admin"), opsclient.WithSource("chaos-admin"), opsclient.WithAuditStore(b.h.Store),
		opsclient.WithApplyTimeout(10*time.Second))
	if err != nil {
		b.t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0", AdminToken: adminToken, MaxLiveClients: adminIdleClients + 1,
		LiveWriteTimeout: adminLiveWriteTimeout, Logger: b.h.logger("admin")}, admin.Deps{JetStream: b.h.JS, Operator: ops})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Wait)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	b.ops, b.admin, b.adminAddr = ops, srv, srv.Addr()
}

// adminGet sends GET path to the listening admin with the headers hdr
// (name, value, ...; "Host" sets the request's host) and returns the status
// and the body.
func (b *badInput) adminGet(ctx context.Context, path string, hdr []string) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, "GET", "http://"+b.adminAddr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// adminRoutes: every admin route, with bad bodies and hostile names, each
// answered with a 4xx and a JSON reason.
func (b *badInput) adminRoutes(ctx context.Context) {
	handler := b.admin.Handler()
	hostile := []string{"pay.*", "pay>", "a\x01b", strings.Repeat("n", 200), "Pay$ments", "a b", "%00"} // not "..": the mux redirects it to the clean path
	adminBodies := []struct{ name, body string }{
		{"not JSON", `{"reason":`}, {"wrong type", `{"reason":7}`}, {"unknown field", `{"reason":"r","bogus":1}`},
		{"two objects", `{"reason":"r"}{"reason":"r"}`}, {"no reason", `{}`}, {"control characters", `{"reason":"\u0000\u001b"}`},
		{"oversize", string(pad(70 << 10))}, {"10 MB body", string(pad(tenMB))},
	}
	type route struct{ method, path string }
	var routes []route
	for _, svc := range append([]string{"bad-svc"}, hostile...) {
		esc := url.PathEscape(svc)
		routes = append(routes, route{"GET", "/api/breakers/" + esc}, route{"POST", "/api/breakers/" + esc + "/open"},
			route{"POST", "/api/breakers/bad-svc/" + esc}, route{"GET", "/api/dlq/" + esc}, route{"POST", "/api/dlq/" + esc + "/resolve"})
	}
	routes = append(routes, route{"POST", "/api/governance/kill-switch"}, route{"POST", "/api/governance/emergency"},
		route{"POST", "/api/dlq/replay-batch"}, route{"GET", "/api/dlq?service=pay.*&status=nope&limit=-1"},
		route{"GET", "/api/audit?after=-1&limit=100000"}, route{"GET", "/api/dlq?bogus=1"})
	for _, r := range routes {
		bodies := adminBodies
		if r.method == "GET" {
			bodies = bodies[:1]
		}
		for _, body := range bodies {
			req := httptest.NewRequestWithContext(ctx, r.method, r.path, bytes.NewReader([]byte(body.body)))
			req.Host = "127.0.0.1:8080" // the loopback dashboard's own host
			req.Header.Set("Authorization", "Bearer "+adminToken)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			var e struct {
				Error string `json:"error"`
			}
			if rec.Code < 400 || rec.Code >= 500 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				b.h.Violation("admin %s %s with %s: answered %d %s, want a 4xx with a reason", r.method, r.path, body.name, rec.Code, clipString(rec.Body.String(), 200))
			}
			b.answer(fmt.Sprintf("admin %s %s: %s", r.method, clipString(r.path, 60), body.name))
		}
	}
}

// adminHardening: the listening admin given adminIdleClients live
// dashboards that never read (a 4 KiB receive buffer) and as many
// connections that send two bytes and stall, while a dashboard that reads
// takes the last slot and fleet events of 7 KiB fill the idle dashboards'
// buffers. Invariants: GET /api/health answers within adminAnswerBound
// throughout; a dashboard past MaxLiveClients gets 503; every idle
// dashboard is dropped and its connection reset, which frees its slot (a
// new dashboard connects), while the reading one gets every event; the
// stalled connections are closed by the server within
// telemetry.ReadHeaderTimeout and a margin; a request naming a foreign
// Host gets 421 (the health probe answers any host); dead-letter bodies
// and the audit records are withheld without the token.
func (b *badInput) adminHardening(ctx context.Context) {
	h, srv := b.h, b.admin
	var slowest time.Duration
	health := func(when string) {
		start := time.Now()
		code, _, err := b.adminGet(ctx, "/api/health", nil)
		took := time.Since(start)
		slowest = max(slowest, took)
		if err != nil || code != http.StatusOK || took > adminAnswerBound {
			h.Violation("admin health %s: %d (%v) in %s, want 200 within %s", when, code, err, took, adminAnswerBound)
		}
	}
	dial := func() *net.TCPConn {
		c, err := net.Dial("tcp", b.adminAddr)
		if err != nil {
			b.t.Fatalf("chaos: dial the admin: %v", err)
		}
		tc := c.(*net.TCPConn)
		if err := tc.SetReadBuffer(4 << 10); err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(func() { _ = tc.Close() })
		return tc
	}
	stallStart := time.Now()
	var idle, stalled []*net.TCPConn
	for range adminIdleClients {
		c := dial()
		if _, err := io.WriteString(c, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			b.t.Fatal(err)
		}
		idle = append(idle, c)
		b.bad("admin: a live dashboard that never reads")
		s := dial()
		if _, err := io.WriteString(s, "GE"); err != nil {
			b.t.Fatal(err)
		}
		stalled = append(stalled, s)
		b.bad("admin: a connection that sends two bytes and stalls")
	}
	if !h.Until(30*time.Second, 10*time.Millisecond, func() bool { return srv.LiveClients() == adminIdleClients }) {
		h.Violation("%d live dashboards served, want the %d idle ones", srv.LiveClients(), adminIdleClients)
	}
	health("with the idle dashboards and stalled connections")

	// The reading dashboard takes the last slot; one more is refused.
	reader, code := b.readingDashboard(ctx)
	if reader == nil {
		h.Violation("a reading dashboard in the last slot: %d, want 200", code)
		return
	}
	defer reader.close()
	if code, _, err := b.adminGet(ctx, "/api/events", nil); err != nil || code != http.StatusServiceUnavailable {
		h.Violation("a live dashboard past MaxLiveClients: %d (%v), want 503", code, err)
	}
	b.answer("admin: a live dashboard past MaxLiveClients")

	// Foreign hosts, and reads that need the token.
	b.foreignHosts(ctx)
	b.readsNeedTheToken(ctx)
	health("after the foreign hosts and the reads without the token")

	// Fleet events of 7 KiB, in batches the reading dashboard keeps up
	// with, until every idle dashboard is dropped.
	published := 0
	for srv.LiveClients() > 1 && published < 4000 {
		for range 20 {
			if _, err := b.js.Publish(ctx, "baldur.event.chaos.fill", fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, published, strings.Repeat("p", 7<<10))); err != nil {
				b.t.Fatalf("chaos: publish a fleet event: %v", err)
			}
			published++
		}
		if !reader.upTo(ctx, published) {
			h.Violation("the reading dashboard got %d of %d events", reader.n(), published)
			break
		}
		health(fmt.Sprintf("after %d events", published))
	}
	st := srv.LiveStats()
	if st.Clients != 1 || st.DroppedBehind+st.DroppedStalled != adminIdleClients {
		h.Violation("after %d events of 7 KiB: live stats %+v, want the reading dashboard alone and %d drops", published, st, adminIdleClients)
	}
	// Each idle connection was reset: a read ends at once.
	reset := 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			h.Violation("an idle live dashboard's connection is still open after its drop: %v", err)
			continue
		}
		reset++
	}
	// Their slots are free: a new dashboard connects.
	if newcomer, code := b.readingDashboard(ctx); newcomer == nil {
		h.Violation("a new dashboard after the drops: %d, want 200", code)
	} else {
		if got := srv.LiveClients(); got != 2 {
			h.Violation("after the drops a new dashboard connected; %d served, want 2", got)
		}
		newcomer.close()
	}

	// The stalled connections are closed once the header deadline passes.
	closed := 0
	var lastClose time.Duration
	for _, s := range stalled {
		_ = s.SetReadDeadline(stallStart.Add(telemetry.ReadHeaderTimeout + 10*time.Second))
		_, err := io.ReadAll(bufio.NewReader(s))
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			h.Violation("a stalled connection is still open %s after it stalled: %v", since(stallStart), err)
			continue
		}
		closed++
		lastClose = time.Since(stallStart)
	}
	health("at the end")
	b.t.Logf("chaos: admin: %d idle dashboards dropped after %d events of 7 KiB (%d fell behind, %d stalled), %d connections reset; %d of %d stalled connections closed, the last %s after they stalled; health answered within %s at the slowest",
		st.DroppedBehind+st.DroppedStalled, published, st.DroppedBehind, st.DroppedStalled, reset, closed, len(stalled),
		lastClose.Round(time.Millisecond), slowest.Round(time.Millisecond))
}

// foreignHosts: requests naming a host the loopback admin does not serve
// are answered 421, the live stream and the dashboard included; the health
// probe answers any host.
func (b *badInput) foreignHosts(ctx context.Context) {
	for _, host := range []string{"evil.example:8080", "attacker.test", "127.0.0.1.nip.io:8080", "localhost.evil.example"} {
		for _, path := range []string{"/", "/api/breakers", "/api/events", "/api/dlq/stats"} {
			code, _, err := b.adminGet(ctx, path, []string{"Host", host})
			if err != nil || code != http.StatusMisdirectedRequest {
				b.h.Violation("GET %s naming host %q: %d (%v), want 421", path, host, code, err)
			}
			b.answer(fmt.Sprintf("admin GET %s naming host %q", path, host))
		}
		if code, _, err := b.adminGet(ctx, "/api/health", []string{"Host", host}); err != nil || code != http.StatusOK {
			b.h.Violation("the health probe naming host %q: %d (%v), want 200", host, code, err)
		}
	}
}

// readsNeedTheToken: a good dead letter read without the token (no token,
// a wrong one, another scheme) comes without its request and metadata, and
// whole with it; the audit records are refused without it.
func (b *badInput) readsNeedTheToken(ctx context.Context) {
	var id string
	for k, svc := range b.letters.Acked() {
		if svc == b.goodSvcs[0] {
			id = k
			break
		}
	}
	withToken := []string{"Authorization", "Bearer " + adminToken}
	var whole replay.DLQEntryReply
	if !b.h.Until(Wait, 100*time.Millisecond, func() bool {
		code, body, err := b.adminGet(ctx, "/api/dlq/"+id, withToken)
		return err == nil && code == http.StatusOK && json.Unmarshal(body, &whole) == nil
	}) {
		b.h.Violation("dead letter %s never readable through the admin", id)
		return
	}
	if len(whole.Request) == 0 || whole.Redacted {
		b.h.Violation("dead letter %s read with the token: request %q, redacted %v; want it whole", id, whole.Request, whole.Redacted)
	}
	without := [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + adminToken}, {"Authorization", "Bearer"}}
	for _, hdr := range without {
		what := "no token"
		if hdr != nil {
			what = hdr[1]
		}
		code, body, err := b.adminGet(ctx, "/api/dlq/"+id, hdr)
		var e replay.DLQEntryReply
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &e) != nil || len(e.Request) > 0 || len(e.Metadata) > 0 || !e.Redacted ||
			bytes.Contains(body, whole.Request) {
			b.h.Violation("dead letter %s read with %q: %d (%v) %s; want it without its request and metadata, redacted", id, what, code, err, clipString(string(body), 200))
		}
		b.bad("admin: a dead letter's body read with " + what)
		code, body, err = b.adminGet(ctx, "/api/dlq?service="+b.goodSvcs[0], hdr)
		var list replay.DLQListReply
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
			b.h.Violation("dead letters of %s listed with %q: %d (%v)", b.goodSvcs[0], what, code, err)
		}
		for _, e := range list.Entries {
			if len(e.Request) > 0 || len(e.Metadata) > 0 {
				b.h.Violation("dead letter %s listed with %q carries its request or metadata", e.ID, what)
			}
		}
		b.bad("admin: the dead letters listed with " + what)
		code, body, err = b.adminGet(ctx, "/api/audit", hdr)
		if err != nil || code != http.StatusUnauthorized {
			b.h.Violation("audit records read with %q: %d (%v) %s, want 401", what, code, err, clipString(string(body), 200))
		}
		b.answer("admin: the audit records read with " + what)
	}
	if code, body, err := b.adminGet(ctx, "/api/audit", withToken); err != nil || code != http.StatusOK {
		b.h.Violation("audit records read with the token: %d (%v) %s, want 200", code, err, clipString(string(body), 200))
	}
}

// dashboard is a live dashboard that reads: it counts the fleet events of
// the admin cases ({"i": n}) it gets, in order.
type dashboard struct {
	cancel context.CancelFunc
	got    chan int
	count  int
}

// readingDashboard opens GET /api/events on the listening admin and reads
// it until close; nil and the status when the admin does not serve it.
func (b *badInput) readingDashboard(ctx context.Context) (*dashboard, int) {
	dctx, cancel := context.WithCancel(ctx)
	d := &dashboard{cancel: cancel, got: make(chan int, 1<<14)}
	req, err := http.NewRequestWithContext(dctx, "GET", "http://"+b.adminAddr+"/api/events", nil)
	if err != nil {
		b.t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("chaos: a reading dashboard: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		_ = res.Body.Close()
		cancel()
		return nil, res.StatusCode
	}
	go func() {
		defer close(d.got)
		defer func() { _ = res.Body.Close() }()
		r := bufio.NewReader(res.Body)
		var name string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				name = n
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok || name != "event" {
				continue
			}
			var ev admin.RecentEvent
			var body struct {
				I *int `json:"i"`
			}
			if json.Unmarshal([]byte(data), &ev) == nil && json.Unmarshal(ev.Data, &body) == nil && body.I != nil {
				d.got <- *body.I
			}
		}
	}()
	return d, res.StatusCode
}

// upTo waits until the dashboard got events 0..n-1 of this stream, in
// order; false if it was dropped, got one out of order, or Wait passed.
func (d *dashboard) upTo(ctx context.Context, n int) bool {
	timeout := time.NewTimer(Wait)
	defer timeout.Stop()
	for d.count < n {
		select {
		case i, ok := <-d.got:
			if !ok || i != d.count {
				return false
			}
			d.count++
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (d *dashboard) n() int { return d.count }

func (d *dashboard) close() { d.cancel() }

// dlqStatsAtScale: dead letters of statsServices services (not yet due,
// so that no replay starts), and GET /api/dlq/stats read page by page
// through the listening admin, each page within statsBound; the pages
// together count every service once, and the totals every entry.
func (b *badInput) dlqStatsAtScale(ctx context.Context) {
	h := b.h
	start := time.Now()
	due := time.Now().Add(24 * time.Hour)
	entries := make([]domain.DLQEntry, 0, 2000)
	want := map[string]bool{}
	for i := range statsServices {
		svc := fmt.Sprintf("scale-%05d", i)
		want[svc] = true
		entries = append(entries, domain.DLQEntry{ID: dlqID(h, svc), Service: svc, Domain: domain.DomainExternalService, FailureType: "TIMEOUT",
			Operation: "charge", Request: json.RawMessage(`{"n":1}`), ErrorMessage: "chaos", MaxRetries: 3, NextAttemptAt: due})
		if len(entries) == cap(entries) || i == statsServices-1 {
			if _, err := h.Store.InsertEntries(ctx, entries); err != nil {
				b.t.Fatalf("chaos: insert dead letters: %v", err)
			}
			entries = entries[:0]
		}
	}
	inserted := since(start)
	b.bad(fmt.Sprintf("dead letters of %d services", statsServices))

	seen := map[string]bool{}
	var slowest time.Duration
	after, pages := "", 0
	for {
		t0 := time.Now()
		code, body, err := b.adminGet(ctx, "/api/dlq/stats?limit="+fmt.Sprint(replay.MaxStatsLimit)+"&after="+url.QueryEscape(after), nil)
		took := time.Since(t0)
		slowest = max(slowest, took)
		var page replay.DLQStatsReply
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &page) != nil {
			h.Violation("DLQ stats page %d: %d (%v) %s", pages+1, code, err, clipString(string(body), 200))
			return
		}
		pages++
		if took > statsBound {
			h.Violation("DLQ stats page %d of %d services took %s, want at most %s", pages, page.Services, took, statsBound)
		}
		if page.Services < statsServices || page.Totals[domain.DLQPending] < statsServices {
			h.Violation("DLQ stats page %d: %d services, %d pending in all; want at least %d", pages, page.Services, page.Totals[domain.DLQPending], statsServices)
		}
		for svc := range page.Counts {
			if seen[svc] {
				h.Violation("DLQ stats: %s on two pages", svc)
			}
			seen[svc] = true
		}
		if page.Next == "" || pages > statsServices/replay.MaxStatsLimit+5 {
			break
		}
		after = page.Next
	}
	missing := 0
	for svc := range want {
		if !seen[svc] {
			missing++
		}
	}
	if missing > 0 {
		h.Violation("DLQ stats: %d of %d services on no page", missing, statsServices)
	}
	// The first page as the dashboard asks for it.
	t0 := time.Now()
	if code, _, err := b.adminGet(ctx, "/api/dlq/stats", nil); err != nil || code != http.StatusOK || time.Since(t0) > statsBound {
		h.Violation("GET /api/dlq/stats: %d (%v) in %s, want 200 within %s", code, err, since(t0), statsBound)
	}
	b.t.Logf("chaos: DLQ stats: %d services inserted in %s, read in %d pages of up to %d through the admin, the slowest in %s",
		statsServices, inserted, pages, replay.MaxStatsLimit, slowest.Round(time.Millisecond))
}

// dlqID is a seeded id of the scenario's dead letter of svc in the stats
// case.
func dlqID(h *Harness, svc string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "baldur-chaos/%d/%s/stats/%s", h.seed, h.name, svc)).String()
}
