//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baldurfleet/baldur/db"
	"github.com/baldurfleet/baldur/internal/devstack"
)

// countReplayConfig drains dead letters continuously and, like
// countConfig, never trips on the scenario's reports, whose totals its window
// keeps.
const countReplayConfig = `{"window":"1h","failure_rate_threshold":100,"failure_threshold":1000000,"auto_replay":"continuous"}`

// ownPostgres is a PostgreSQL server of one scenario's own, which it may
// stop and start again on the same directory and port (the shared server of
// testenv must stay up for the other scenarios).
type ownPostgres struct {
	t    *testing.T
	dir  string
	port int

	mu sync.Mutex
	pg *devstack.Postgres
}

// startOwnPostgres starts a durable (fsync on) server in a directory of its
// own, migrates its "postgres" database to the latest schema, and stops and
// removes it when the test ends.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	dir, err := os.MkdirTemp("", "baldur-chaos-pg-")
	if err != nil {
		t.Fatalf("chaos: PostgreSQL directory: %v", err)
	}
	p := &ownPostgres{t: t, dir: dir}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.pg != nil {
			ctx, cancel := context.WithTimeout(context.Background(), Wait)
			defer cancel()
			_ = p.pg.Stop(ctx)
		}
		_ = os.RemoveAll(dir)
	})
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatalf("chaos: connect to own PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if err := db.Migrate(ctx, conn); err != nil {
		t.Fatalf("chaos: migrate own PostgreSQL: %v", err)
	}
	return p
}

// start starts the server (again) on the directory and, after the first
// start, the same port.
func (p *ownPostgres) start() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: p.dir, Port: p.port, Durable: true, MaxConnections: 100})
	if err != nil {
		p.t.Fatalf("chaos: start own PostgreSQL: %v", err)
	}
	p.mu.Lock()
	p.pg, p.port = pg, pg.Port()
	p.mu.Unlock()
}

// URL is the "postgres" database's URL; it stays the same across restarts.
func (p *ownPostgres) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pg.DatabaseURL("postgres")
}

// stop shuts the server down: gracefully (fast shutdown: sessions are
// ended, a checkpoint is written) or, when crash, immediately (SIGQUIT: no
// checkpoint, recovery from the WAL at the next start, as after a crash).
func (p *ownPostgres) stop(crash bool) {
	p.t.Helper()
	p.mu.Lock()
	pg := p.pg
	p.pg = nil
	p.mu.Unlock()
	if crash {
		if err := syscall.Kill(pg.PID(), syscall.SIGQUIT); err != nil {
			p.t.Fatalf("chaos: SIGQUIT PostgreSQL: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := pg.Stop(ctx); err != nil {
		p.t.Fatalf("chaos: stop own PostgreSQL: %v", err)
	}
}

// holdLock opens a session that takes table's ACCESS EXCLUSIVE lock and
// holds it for d: every statement on the table waits meanwhile, as behind a
// long migration or a stuck transaction.
func holdLock(ctx context.Context, url, table string, d time.Duration) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return err
	}
	return pause(ctx, d)
}

// TestChaosPostgres is scenario 3: while dead letters are submitted and
// replayed, PostgreSQL is slowed down (every byte between the
// replay-workers and the server delayed; the entries table locked by
// another session) and restarted (a graceful restart, and an immediate
// shutdown that needs crash recovery), each for a seeded time. Invariants:
// every acknowledged dead letter is in PostgreSQL exactly once and ends
// replayed or escalated (nothing lost), no entry is delivered twice
// concurrently, every report is folded exactly once, and replay resumes
// after every fault (deliveries go on after the last one).
func TestChaosPostgres(t *testing.T) {
	pg := startOwnPostgres(t)
	h := New(t, "postgres-faults", Options{DatabaseURL: pg.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dlSvcs := names("pgdl", 4)
	for _, svc := range dlSvcs {
		h.SetConfig(svc, countReplayConfig)
	}
	h.StartBreakerWorker("bw-1")
	h.StartBreakerWorker("bw-2")
	rws := []*ReplayWorker{h.StartReplayWorker("rw-1", ReplayOptions{}), h.StartReplayWorker("rw-2", ReplayOptions{})}

	sink := h.NewReplaySink(replayVerdict(h.Seed()))
	service := h.Client("svc-handler")
	for _, svc := range dlSvcs {
		sink.Serve(service, svc)
	}
	reports := h.NewReports("svc-reporter")
	var first []Report
	for _, svc := range dlSvcs {
		first = append(first, Report{Service: svc, Successes: 1})
	}
	if err := reports.Send(ctx, first); err != nil {
		t.Fatal(err)
	}

	loadCtx, stopLoad := context.WithCancel(ctx)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	letters := h.NewDeadLetters("svc-dlq")
	wg.Go(func() {
		if err := submitLetters(loadCtx, ctx, letters, dlSvcs, 10*time.Millisecond); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		for loadCtx.Err() == nil {
			if err := reports.Send(ctx, countReports(h, dlSvcs, 10)); err != nil {
				errs <- err
				return
			}
			_ = pause(loadCtx, 50*time.Millisecond)
		}
	})

	// Faults, in a seeded order: each kind twice.
	kinds := []string{"slow-link", "table-lock", "restart", "crash-restart"}
	plan := append(append([]string{}, kinds...), kinds...)
	for i := len(plan) - 1; i > 0; i-- {
		j := h.IntN(i + 1)
		plan[i], plan[j] = plan[j], plan[i]
	}
	if testing.Short() {
		plan = plan[:2]
	}
	start := time.Now()
	for _, kind := range plan {
		_ = pause(ctx, h.Duration(500*time.Millisecond, 2*time.Second))
		hold := h.Duration(500*time.Millisecond, 3*time.Second)
		switch kind {
		case "slow-link":
			delay := h.Duration(5*time.Millisecond, 100*time.Millisecond)
			h.Fault(kind, fmt.Sprintf("%s per chunk to PostgreSQL for %s at %s", delay, hold, since(start)))
			for _, rw := range rws {
				rw.DBLink.SetDelay(delay)
			}
			_ = pause(ctx, hold)
			for _, rw := range rws {
				rw.DBLink.SetDelay(0)
			}
		case "table-lock":
			h.Fault(kind, fmt.Sprintf("dlq_entries locked for %s at %s", hold, since(start)))
			if err := holdLock(ctx, pg.URL(), "dlq_entries", hold); err != nil {
				t.Fatalf("chaos: lock dlq_entries: %v", err)
			}
		case "restart", "crash-restart":
			h.Fault(kind, fmt.Sprintf("PostgreSQL down for %s at %s", hold, since(start)))
			pg.stop(kind == "crash-restart")
			_ = pause(ctx, hold)
			pg.start()
		}
	}
	faultsEnd := time.Now()
	afterFaults := sink.Deliveries()
	// Work resumes: the load runs on for a while with every fault healed.
	_ = pause(ctx, 3*time.Second)
	stopLoad()
	wg.Wait()
	close(errs)
	mustNotFail(t, errs)

	settle(ctx, h, reports, dlSvcs, 60*time.Second)
	if sink.Deliveries() == afterFaults {
		h.Violation("no replay delivery after the last fault (%s)", faultsEnd.Format(time.RFC3339))
	}
	h.CheckFolded(ctx, reports.AckedAll())
	entries := h.CheckDeadLetters(ctx, letters.Acked(), sink, ReplayedOrEscalated)
	t.Logf("chaos: %d replay deliveries, %d after the last fault", sink.Deliveries(), sink.Deliveries()-afterFaults)
	h.Finish(Totals{Messages: reports.Messages() + letters.Messages(), Entries: entries})
}
