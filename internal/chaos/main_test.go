//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"testing"

	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) {
	flag.Parse()
	seed := RunSeed()
	fmt.Printf("chaos: seed=%d (repeat with %s=%d make chaos, or -args -seed=%d)\n", seed, EnvSeed, seed, seed)
	testenv.Main(m)
}
