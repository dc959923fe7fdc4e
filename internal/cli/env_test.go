package cli_test

import (
	"testing"

	"github.com/baldurfleet/baldur/internal/testenv"
)

func testenvNATS(t *testing.T) string { return testenv.NATS(t).URL }
