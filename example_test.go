package baldur_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// startFleet starts an embedded nats-server with the fleet's topology, as a
// breaker-worker would create it, and returns a connection to it. A real
// service connects to its NATS cluster instead.
func startFleet() (nc *nats.Conn, top *topology.Topology, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "baldur-example")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: devstack.RandomPort, StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	nc, err = nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if top, err = topology.Ensure(ctx, js, topology.Config{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	return nc, top, func() {
		nc.Close()
		srv.Shutdown()
		_ = os.RemoveAll(dir)
	}
}

// openBreaker writes an open breaker for svc, as the breaker-worker does when
// it trips.
func openBreaker(top *topology.Topology, svc string) {
	state := fmt.Sprintf(`{"service":%q,"state":"open","mode":"auto","generation":1,"recovery_at":"2999-01-01T00:00:00Z"}`, svc)
	if _, err := top.Breakers.Put(context.Background(), svc, []byte(state)); err != nil {
		log.Fatal(err)
	}
}

var quiet = baldur.WithLogger(slog.New(slog.DiscardHandler))

func ExampleConnect() {
	nc, _, stop := startFleet()
	defer stop()

	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, baldur.WithNodeID("checkout-1"), quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	fmt.Println(client.NodeID(), client.Allow("payments"))
	// Output: checkout-1 true
}

func ExampleClient_Allow() {
	nc, top, stop := startFleet()
	defer stop()
	openBreaker(top, "search")

	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	for _, svc := range []string{"payments", "search"} {
		if !client.Allow(svc) {
			fmt.Println(svc, "refused: breaker open")
			continue
		}
		start := time.Now()
		err := callService(svc)
		client.Record(svc, baldur.Result(err, time.Since(start)))
		fmt.Println(svc, "called")
	}
	// Output:
	// payments called
	// search refused: breaker open
}

func callService(string) error { return nil }

func ExampleClient_Breaker() {
	nc, _, stop := startFleet()
	defer stop()
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	// Resolve once, use on the hot path.
	payments := client.Breaker("payments")
	if payments.Allow() {
		payments.Record(baldur.Failure(120*time.Millisecond, "HTTP_503"))
	}
	state, known := payments.State()
	fmt.Println(state, known)
	// Output: closed false
}

func ExampleClient_Execute() {
	nc, top, stop := startFleet()
	defer stop()
	openBreaker(top, "recommendations")
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	err = client.Execute(ctx, "recommendations", func(ctx context.Context) error {
		return nil // the call
	})
	fmt.Println(errors.Is(err, baldur.ErrOpen))

	// With a fallback function.
	err = client.Execute(ctx, "recommendations", func(ctx context.Context) error {
		return nil
	}, baldur.WithFallback(func(ctx context.Context, err error) error {
		fmt.Println("fallback:", errors.Is(err, baldur.ErrOpen))
		return nil
	}))
	fmt.Println(err)
	// Output:
	// true
	// fallback: true
	// <nil>
}

func ExampleExecuteValue() {
	nc, top, stop := startFleet()
	defer stop()
	openBreaker(top, "pricing")
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	price, err := baldur.ExecuteValue(ctx, client, "pricing", func(ctx context.Context) (int, error) {
		return 1999, nil
	}, baldur.WithFallbackValue(2500)) // the list price when pricing is down
	fmt.Println(price, err)
	// Output: 2500 <nil>
}

func ExampleWithDeadLetter() {
	nc, top, stop := startFleet()
	defer stop()
	openBreaker(top, "payments")
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	charge := baldur.FailedOperation{
		Operation:      "charge",
		IdempotencyKey: "order-123-charge",
		Request:        map[string]any{"order": "123", "amount": 1999},
		Priority:       baldur.PriorityCritical,
	}
	err = client.Execute(ctx, "payments", func(ctx context.Context) error {
		return nil
	}, baldur.WithDeadLetter(charge, false))
	// The call was refused and kept: it is replayed once payments recovers.
	fmt.Println(errors.Is(err, baldur.ErrOpen))
	// Output: true
}

func ExampleClient_DeadLetter() {
	nc, _, stop := startFleet()
	defer stop()
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	err = client.DeadLetter(ctx, baldur.FailedOperation{
		Service:        "payments",
		Domain:         baldur.DomainExternalService,
		FailureType:    "PG_TIMEOUT",
		Operation:      "charge",
		IdempotencyKey: "order-123-charge",
		Request:        json.RawMessage(`{"order":"123","amount":1999}`),
		Err:            errors.New("upstream timeout"),
	})
	fmt.Println(err)
	// Output: <nil>
}

func ExampleClient_HandleReplay() {
	nc, _, stop := startFleet()
	defer stop()
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	stopReplays, err := client.HandleReplay("payments", func(ctx context.Context, req baldur.ReplayRequest) error {
		var charge struct{ Order string }
		if err := json.Unmarshal(req.Body, &charge); err != nil {
			return baldur.Permanent(err) // never retry a body we cannot read
		}
		fmt.Println("replaying", req.Operation, "for order", charge.Order, "attempt", req.Attempt)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stopReplays()

	// What the replay-worker sends when the breaker closes.
	msg, _ := events.NewMsg(events.MustReplaySubject("payments"),
		events.NewEnvelopeRandomID(events.TypeReplay, "replay-worker", time.Now()),
		events.ReplayDelivery{Service: "payments", DLQID: "9a1e3c57-0f6b-4e0e-8d8a-6c2b51f0e7aa",
			Attempt: 1, Operation: "charge", Request: json.RawMessage(`{"order":"123"}`)})
	reply, err := nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply.Data))
	// Output:
	// replaying charge for order 123 attempt 1
	// {"ok":true}
}

func ExampleClient_RegisterDownstreamChecker() {
	nc, _, stop := startFleet()
	defer stop()
	ctx := context.Background()
	client, err := baldur.Connect(ctx, nc, quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	// Refuse calls to search while its database is known to be down.
	searchDBUp := false
	unregister := client.RegisterDownstreamChecker(func(svc string) bool {
		return svc != "search" || searchDBUp
	})
	defer unregister()

	err = client.Execute(ctx, "search", func(ctx context.Context) error { return nil })
	fmt.Println(errors.Is(err, baldur.ErrDownstream))
	// Output: true
}
