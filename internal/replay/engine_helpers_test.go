package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// engineT0 is the fake clock's start.
var engineT0 = time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)

// engineClock is a manual clock: After fires when Advance passes its
// deadline.
type engineClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []engineWaiter
	changed chan struct{}
}

type engineWaiter struct {
	at time.Time
	ch chan time.Time
}

func newEngineClock() *engineClock {
	return &engineClock{now: engineT0, changed: make(chan struct{})}
}

func (c *engineClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *engineClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, engineWaiter{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock by d and fires the waiters that are due.
func (c *engineClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

// WaitForWaiter blocks until someone waits for a deadline within horizon of
// now, and returns how far away the earliest such deadline is.
func (c *engineClock) WaitForWaiter(t testing.TB, horizon time.Duration) time.Duration {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		best := time.Duration(-1)
		for _, w := range c.waiters {
			if d := w.at.Sub(c.now); d <= horizon && (best < 0 || d < best) {
				best = d
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if best >= 0 {
			return best
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("nobody waited on the clock within %s", horizon)
		}
	}
}

// engineView is a BreakerView the test sets directly.
type engineView struct {
	mu     sync.Mutex
	state  map[string]domain.State
	gen    map[string]uint64
	config map[string]domain.Config
	gov    domain.Governance
}

func newEngineView() *engineView {
	return &engineView{state: map[string]domain.State{}, gen: map[string]uint64{}, config: map[string]domain.Config{}}
}

func (v *engineView) Breaker(svc string) (domain.State, uint64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.state[svc]
	return st, v.gen[svc], ok
}

func (v *engineView) Config(svc string) domain.Config {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.config[svc]; ok {
		return c
	}
	return domain.DefaultConfig()
}

func (v *engineView) Governance() domain.Governance {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gov
}

func (v *engineView) set(svc string, st domain.State, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.state[svc], v.gen[svc] = st, gen
}

func (v *engineView) setConfig(svc string, c domain.Config) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.config[svc] = c
}

func (v *engineView) setGovernance(g domain.Governance) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gov = g
}

// engineEnv is one NATS server, one database, a fake clock and a view.
type engineEnv struct {
	nats   *testenv.NATSEnv
	dbURL  string
	store  *store.Store
	clock  *engineClock
	view   *engineView
	events chan *nats.Msg
}

func newEngineEnv(t *testing.T) *engineEnv {
	t.Helper()
	env := &engineEnv{nats: testenv.NATS(t), clock: newEngineClock(), view: newEngineView()}
	env.dbURL = testenv.PostgresURL(t)
	env.store = env.newStore(t)
	_, err := topology.Ensure(t.Context(), env.nats.JS, topology.Config{Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	env.events = make(chan *nats.Msg, 10_000)
	sub, err := env.nats.Conn.ChanSubscribe("baldur.event.replay.>", env.events)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, env.nats.Conn.Flush())
	return env
}

// newStore opens another pool on the test's database; it is closed when the
// test ends (closing it again is harmless).
func (env *engineEnv) newStore(t *testing.T) *store.Store {
	t.Helper()
	st, _ := env.newStorePool(t)
	return st
}

func (env *engineEnv) newStorePool(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), env.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return store.New(pool, store.WithClock(env.clock.Now), store.WithAuditKey(testenv.AuditKey)), pool
}

// engine returns an engine of node on its own connection.
func (env *engineEnv) engine(t *testing.T, node string, st *store.Store, nc *nats.Conn) *replay.Engine {
	t.Helper()
	if st == nil {
		st = env.store
	}
	if nc == nil {
		nc = env.nats.Connect(t)
	}
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	e, err := replay.NewEngine(st, nc, js, env.view, replay.EngineConfig{
		Node: node, LeaseTTL: time.Hour, RequestTimeout: 10 * time.Second,
		Now: env.clock.Now, After: env.clock.After, Jitter: func() float64 { return 0 },
	})
	require.NoError(t, err)
	return e
}

// insertEntries stores n pending entries of svc, oldest first, due at once.
func (env *engineEnv) insertEntries(t *testing.T, svc string, n int, mutate func(i int, e *domain.DLQEntry)) []string {
	t.Helper()
	entries := make([]domain.DLQEntry, n)
	ids := make([]string, n)
	for i := range entries {
		e := domain.DLQEntry{
			ID: uuid.NewString(), Service: svc, Domain: domain.DomainExternalService, FailureType: "TIMEOUT",
			Operation: "charge", IdempotencyKey: fmt.Sprintf("order-%d-charge", i),
			Request:  json.RawMessage(fmt.Sprintf(`{"order":%d}`, i)),
			Priority: domain.PriorityNormal, MaxRetries: domain.DefaultMaxRetries,
			CreatedAt: engineT0.Add(-time.Hour + time.Duration(i)*time.Millisecond),
		}
		if mutate != nil {
			mutate(i, &e)
		}
		entries[i], ids[i] = e, e.ID
	}
	res, err := env.store.InsertEntries(t.Context(), entries)
	require.NoError(t, err)
	require.Len(t, res.Inserted, n)
	return ids
}

// engineService is a plain subscriber on baldur.replay.<svc> in the replay
// queue group that counts deliveries per entry and answers with reply.
type engineService struct {
	mu        sync.Mutex
	delivered map[string]int
	inflight  map[string]int
	overlap   bool
	order     []string
	headers   []nats.Header
}

func (env *engineEnv) serve(t *testing.T, svc string, reply func(n int, m *nats.Msg) events.ReplayReply) *engineService {
	t.Helper()
	s := &engineService{delivered: map[string]int{}, inflight: map[string]int{}}
	nc := env.nats.Connect(t)
	sub, err := nc.QueueSubscribe(events.MustReplaySubject(svc), "baldur-replay", func(m *nats.Msg) {
		id := m.Header.Get(events.HeaderDLQID)
		s.mu.Lock()
		s.delivered[id]++
		s.inflight[id]++
		if s.inflight[id] > 1 {
			s.overlap = true
		}
		s.order = append(s.order, id)
		s.headers = append(s.headers, m.Header)
		n := len(s.order)
		s.mu.Unlock()
		r := reply(n, m)
		s.mu.Lock()
		s.inflight[id]--
		s.mu.Unlock()
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	return s
}

func (s *engineService) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

func (s *engineService) perEntry() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.delivered))
	for k, v := range s.delivered {
		out[k] = v
	}
	return out
}

func engineOK(int, *nats.Msg) events.ReplayReply { return events.ReplayReply{OK: true} }

// statuses returns the status of every entry of svc.
func (env *engineEnv) statuses(t *testing.T, ids []string) map[string]domain.DLQEntry {
	t.Helper()
	out := make(map[string]domain.DLQEntry, len(ids))
	for _, id := range ids {
		e, err := env.store.Get(t.Context(), id)
		require.NoError(t, err)
		out[id] = e
	}
	return out
}

// drainEvents returns the replay events received so far, by subject suffix
// (kind), decoded.
func (env *engineEnv) drainEvents(t *testing.T) map[events.ReplayEventKind][]any {
	t.Helper()
	require.NoError(t, env.nats.Conn.Flush())
	out := map[events.ReplayEventKind][]any{}
	for {
		select {
		case m := <-env.events:
			dec, err := events.Decode(m.Subject, m.Header, m.Data)
			require.NoError(t, err)
			kind := events.ReplayEventKind(dec.Subject.Name)
			out[kind] = append(out[kind], dec.Payload)
		default:
			return out
		}
	}
}

// waitEvent waits for the next replay event of kind.
func (env *engineEnv) waitEvent(t *testing.T, kind events.ReplayEventKind) any {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-env.events:
			dec, err := events.Decode(m.Subject, m.Header, m.Data)
			require.NoError(t, err)
			if events.ReplayEventKind(dec.Subject.Name) == kind {
				return dec.Payload
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

func engineCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
