// Command baldur is the operator CLI of a Baldur fleet: breakers, dead
// letters, governance, the audit log, config, and the admin HTTP API. See
// docs/cli.md, or run `baldur help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/baldurfleet/baldur/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
