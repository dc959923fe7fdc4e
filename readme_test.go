package baldur_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/topology"
)

// The SDK example of README.md is the body of Example_readme between the
// README markers: it compiles, runs with its output checked, and
// TestReadmeExample keeps the README's copy identical.

const (
	readmeBegin = "\t// README begin\n"
	readmeEnd   = "\t// README end\n"
)

func Example_readme() {
	natsURL, stop := startReadmeFleet()
	defer stop()
	ctx := context.Background()

	// README begin
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	client, err := baldur.Connect(ctx, nc, baldur.WithNodeID("checkout-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	// When payments is back, the dead letters kept below are replayed here.
	stopReplays, err := client.HandleReplay("payments", func(ctx context.Context, req baldur.ReplayRequest) error {
		return charge(ctx, req.Body) // idempotent: a replay may come twice
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stopReplays()

	// Allow (a memory read), call, Record; a refused or failed charge becomes a dead letter.
	order := json.RawMessage(`{"order":"123","amount":1999}`)
	err = client.Execute(ctx, "payments", func(ctx context.Context) error {
		return charge(ctx, order)
	}, baldur.WithDeadLetter(baldur.FailedOperation{Operation: "charge", IdempotencyKey: "order-123", Request: order}, true))
	fmt.Println("charge:", err)
	// README end

	_ = client.Close(ctx) // the deferred calls are then no-ops
	nc.Close()
	// Output:
	// charged {"order":"123","amount":1999}
	// charge: <nil>
}

// charge stands in for the call to the payments provider.
func charge(_ context.Context, body json.RawMessage) error {
	fmt.Println("charged", string(body))
	return nil
}

// startReadmeFleet starts an embedded nats-server with the fleet's topology
// and returns its URL.
func startReadmeFleet() (url string, stop func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "baldur-readme")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := devstack.StartNATS(ctx, devstack.NATSOptions{Port: devstack.RandomPort, StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := topology.Ensure(ctx, js, topology.Config{}); err != nil {
		log.Fatal(err)
	}
	return srv.ClientURL(), func() {
		srv.Shutdown()
		_ = os.RemoveAll(dir)
	}
}

// TestReadmeExample requires the first Go block of README.md to be the code
// between the README markers of Example_readme, one tab less indented.
func TestReadmeExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	_, body, ok := strings.Cut(string(src), readmeBegin)
	require.True(t, ok, "no README begin marker")
	body, _, ok = strings.Cut(body, readmeEnd)
	require.True(t, ok, "no README end marker")
	var want strings.Builder
	for l := range strings.Lines(body) {
		want.WriteString(strings.TrimPrefix(l, "\t"))
	}

	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(readme), "```go\n")
	require.True(t, ok, "README.md has no Go block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok, "README.md's Go block is not closed")
	require.Equal(t, want.String(), block, "README.md's SDK example differs from Example_readme in readme_test.go")
}
