package baldur_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// benchClient is a client of an embedded server whose breaker "payments" is
// closed with state in the bucket (the common case: a snapshot to read).
func benchClient(b *testing.B, state, mode string) *baldur.Client {
	b.Helper()
	env := testenv.NATS(b)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	top, err := topology.Ensure(ctx, env.JS, topology.Config{Partitions: 4, Storage: jetstream.MemoryStorage})
	require.NoError(b, err)
	c, err := baldur.Connect(ctx, env.Connect(b), baldur.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(b, err)
	b.Cleanup(func() { _ = c.Close(context.Background()) })
	_, err = top.Breakers.Put(ctx, "payments",
		[]byte(`{"service":"payments","state":"`+state+`","mode":"`+mode+`","generation":1,"recovery_at":"2999-01-01T00:00:00Z"}`))
	require.NoError(b, err)
	require.Eventually(b, func() bool { return c.Generation("payments") == 1 }, waitFor, time.Millisecond)
	return c
}

func BenchmarkAllow(b *testing.B) {
	c := benchClient(b, "closed", "auto")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !c.Allow("payments") {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !c.Allow("payments") {
					b.Error("refused")
					return
				}
			}
		})
	})
}

// BenchmarkAllowManyServices spreads Allow over 1000 services, most of which
// miss the lookup cache and take the map.
func BenchmarkAllowManyServices(b *testing.B) {
	c := benchClient(b, "closed", "auto")
	names := make([]string, 1000)
	for i := range names {
		names[i] = "svc-" + strconv.Itoa(i)
		c.Allow(names[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Allow(names[i%len(names)])
		i++
	}
}

// BenchmarkAllowOpen measures a refusal by an open breaker, which reads the
// clock to compare with recovery_at.
func BenchmarkAllowOpen(b *testing.B) {
	c := benchClient(b, "open", "auto")
	b.ReportAllocs()
	for b.Loop() {
		if c.Allow("payments") {
			b.Fatal("admitted")
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	c := benchClient(b, "closed", "auto")
	ok := baldur.Success(3 * time.Millisecond)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Record("payments", ok)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Record("payments", ok)
			}
		})
	})
}

func BenchmarkBreakerHandleAllow(b *testing.B) {
	br := benchClient(b, "closed", "auto").Breaker("payments")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !br.Allow() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !br.Allow() {
					b.Error("refused")
					return
				}
			}
		})
	})
}

func BenchmarkBreakerHandleRecord(b *testing.B) {
	br := benchClient(b, "closed", "auto").Breaker("payments")
	ok := baldur.Success(3 * time.Millisecond)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			br.Record(ok)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				br.Record(ok)
			}
		})
	})
}

// BenchmarkAllowRecord is one protected call's bookkeeping: Allow, then
// Record — what gobreaker's Allow + done does.
func BenchmarkAllowRecord(b *testing.B) {
	c := benchClient(b, "closed", "auto")
	ok := baldur.Success(3 * time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		if c.Allow("payments") {
			c.Record("payments", ok)
		}
	}
}

// BenchmarkGobreakerAllow is the anchor: sony/gobreaker's in-process
// TwoStepCircuitBreaker.Allow and its done callback (admission and outcome
// are one pair there).
func BenchmarkGobreakerAllow(b *testing.B) {
	cb := gobreaker.NewTwoStepCircuitBreaker[any](gobreaker.Settings{Name: "payments"})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			done, err := cb.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done, err := cb.Allow()
				if err != nil {
					b.Error(err)
					return
				}
				done(nil)
			}
		})
	})
}

// BenchmarkGobreakerExecute is sony/gobreaker's CircuitBreaker.Execute of a
// call that does nothing.
func BenchmarkGobreakerExecute(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Name: "payments"})
	call := func() (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cb.Execute(call); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecute is the SDK's Execute of a call that does nothing: Allow,
// the clock twice, the call, Record.
func BenchmarkExecute(b *testing.B) {
	c := benchClient(b, "closed", "auto")
	ctx := context.Background()
	call := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Execute(ctx, "payments", call); err != nil {
			b.Fatal(err)
		}
	}
}
