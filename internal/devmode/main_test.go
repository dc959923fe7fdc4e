package devmode_test

import (
	"testing"

	"github.com/baldurfleet/baldur/internal/testenv"
)

// TestMain shares one PostgreSQL server between the tests of the package.
func TestMain(m *testing.M) { testenv.Main(m) }
