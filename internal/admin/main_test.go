package admin_test

import (
	"testing"

	"github.com/baldurfleet/baldur/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
