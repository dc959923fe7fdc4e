package replay_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/replay"
)

// poisonLetters are dead letters that encoding/json takes and PostgreSQL
// refuses, each as a raw body (no SDK check on the way), with the reason
// the rejected event must give: two the contract refuses at decode, one
// only PostgreSQL refuses (SQLSTATE 22003).
func poisonLetters() []struct{ body, reason string } {
	const base = `"domain":"custom","failure_type":"X","operation":"charge"`
	return []struct{ body, reason string }{
		{`{` + base + `,"request":{"note":"a\u0000b"}}`, `\u0000`},
		{`{` + base + `,"metadata":{"k":"\ud800"}}`, "unpaired high surrogate"},
		{`{` + base + `,"request":{"amount":1e1000000}}`, "22003"},
	}
}

// TestIngestIsolatesPoison: 3 poison dead letters among 1,000 good ones over
// 10 services. All 1,000 are stored within 10 s, the 3 are rejected with
// events, the ingest never pauses (so /readyz stays ready), and the same
// holds for a new ingest after a restart.
func TestIngestIsolatesPoison(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	rejected := make(chan *nats.Msg, 64)
	sub, err := env.nats.Conn.ChanSubscribe("baldur.event.rejected.dlq", rejected)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, env.nats.Conn.Flush())

	round := func(in *replay.Ingest, good, done int) {
		t.Helper()
		var paused atomic.Bool
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() { // watch readiness throughout
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
					if in.Stats().Paused {
						paused.Store(true)
					}
				}
			}
		}()
		poison := poisonLetters()
		ids := map[string]string{}
		start := time.Now()
		for i := range good {
			if i%(good/len(poison)) == good/(2*len(poison)) && len(ids) < len(poison) {
				p := poison[len(ids)]
				m := ingestMsg(t, "payments", uuid.New(), ingestLetter(""))
				m.Data = []byte(p.body)
				ids[m.Header.Get(events.HeaderID)] = p.reason
				_, err := env.nats.JS.PublishMsgAsync(m)
				require.NoError(t, err)
			}
			id := uuid.New()
			_, err := env.nats.JS.PublishMsgAsync(ingestMsg(t, fmt.Sprintf("svc-%d", i%10), id, ingestLetter("k-"+id.String())))
			require.NoError(t, err)
		}
		select {
		case <-env.nats.JS.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishing timed out")
		}
		env.counted.wait(t, done+good, 10*time.Second)
		t.Logf("%d good dead letters stored in %s beside %d poison ones", good, time.Since(start), len(poison))

		for len(ids) > 0 {
			select {
			case m := <-rejected:
				dm, err := events.Decode(m.Subject, m.Header, m.Data)
				require.NoError(t, err)
				r := dm.Payload.(events.Rejected)
				want, ok := ids[r.CEID]
				require.True(t, ok, "a rejected event for a dead letter that was not poison: %+v", r)
				require.Contains(t, r.Reason, want)
				require.Equal(t, "invalid_value", r.Code, r.Reason)
				delete(ids, r.CEID)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d poison dead letters never rejected", len(ids))
			}
		}
		close(stop)
		<-sampled
		require.False(t, paused.Load(), "the ingest paused (readyz would fail) over poison")
		require.Eventually(t, func() bool {
			msgs, pending, _ := ingestQueueDepth(t, env.nats.JS)
			return msgs == 0 && pending == 0
		}, 5*time.Second, 10*time.Millisecond, "nothing is left in the work queue")
	}

	cfg := replay.IngestConfig{Batch: 100}
	in := env.start(t, cfg)
	round(in, 1000, 0)
	require.Eventually(t, func() bool { return in.Stats().Rejected == 3 }, 5*time.Second, time.Millisecond)
	require.NoError(t, in.Stop(context.Background()))

	// After a restart: a new ingest on the same queue and database.
	in = env.start(t, cfg)
	round(in, 100, 1000)
	require.Eventually(t, func() bool { return in.Stats().Rejected == 3 }, 5*time.Second, time.Millisecond)
}

// TestIngestSplitsABatchThatKeepsFailing: inserts of more than one entry
// fail with an error that is nobody's fault in particular; after a few
// attempts the batch is split and every dead letter is stored one by one.
func TestIngestSplitsABatchThatKeepsFailing(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	env.counted.intercept(func(_ int, entries []domain.DLQEntry) error {
		if len(entries) > 1 {
			return errors.New("statement timeout")
		}
		return nil
	})
	const n = 20
	for i := range n {
		ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", uuid.New(), ingestLetter(fmt.Sprint("k-", i))))
	}
	in := env.start(t, replay.IngestConfig{Batch: n, Writers: 1, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	env.counted.wait(t, n, 10*time.Second)
	require.Eventually(t, func() bool { return in.Stats().Inserted == n }, 5*time.Second, time.Millisecond)
	require.Positive(t, in.Stats().StoreErrors)
}

// TestIngestHandsBackAnEntryThatKeepsFailing: one dead letter whose insert
// fails every time for a reason the store cannot name is handed back to
// JetStream after a few attempts, the writer stores the others meanwhile,
// and the dead letter is stored once its insert works again.
func TestIngestHandsBackAnEntryThatKeepsFailing(t *testing.T) {
	t.Parallel()
	env := newIngestEnv(t)
	stuck := uuid.New()
	var broken atomic.Bool
	broken.Store(true)
	attempts := make(chan struct{}, 64)
	env.counted.intercept(func(_ int, entries []domain.DLQEntry) error {
		for _, e := range entries {
			if e.ID == stuck.String() && broken.Load() {
				attempts <- struct{}{}
				return errors.New("could not serialize access")
			}
		}
		return nil
	})
	in := env.start(t, replay.IngestConfig{Batch: 10, Writers: 1, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ingestPublish(t, env.nats.JS, ingestMsg(t, "payments", stuck, ingestLetter("stuck")))
	for range 2 * 3 { // the batch, then the entry alone, 3 attempts each at most
		select {
		case <-attempts:
		case <-time.After(10 * time.Second):
			t.Fatal("the stuck dead letter was not tried")
		}
	}
	// The writer is free: dead letters published after it are stored.
	for i := range 5 {
		ingestPublish(t, env.nats.JS, ingestMsg(t, "orders", uuid.New(), ingestLetter(fmt.Sprint("o-", i))))
	}
	env.counted.wait(t, 5, 10*time.Second)
	broken.Store(false)
	env.counted.wait(t, 6, 10*time.Second)
	require.Eventually(t, func() bool { return in.Stats().Inserted == 6 }, 5*time.Second, time.Millisecond,
		"inserted: %d", in.Stats().Inserted)
	require.Zero(t, in.Stats().Rejected, "an entry that fails for no reason of its own is never rejected")
}
