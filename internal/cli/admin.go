package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/process"
)

// EnvAdminToken is the environment twin of --admin-token.
const EnvAdminToken = "BALDUR_ADMIN_TOKEN"

func adminCommands() []*command {
	return []*command{{
		noun: "admin", needs: needNATS | needDBIfSet | wantAuditKey | needReconnect,
		summary: "serve the admin HTTP API and the live dashboard until Ctrl-C",
		examples: []string{"baldur admin --http-addr 127.0.0.1:8080 --admin-token \"$TOKEN\"",
			"BALDUR_ADMIN_TOKEN=s3cret baldur admin --http-addr :8080 --database-url postgres://baldur@db/baldur"},
		flags: func(f *process.Flags) func() any {
			tok := f.String("admin-token", EnvAdminToken, "", "bearer token for writes (empty: read-only)")
			f.FlagSet().Lookup("http-addr").Usage = "address of the admin API and dashboard (default " + admin.DefaultAddr + ") ($" + process.EnvHTTPAddr + ")"
			return func() any { return tok }
		},
		run: runAdmin,
	}}
}

func runAdmin(r *runner, _ []string) error {
	addr := r.cfg.HTTPAddr
	if addr == "" {
		addr = admin.DefaultAddr
	}
	srv, err := admin.New(admin.Config{
		Addr: addr, AdminToken: *r.extra.(*string), Logger: r.cfg.Logger(r.stderr),
	}, admin.Deps{JetStream: r.client.JetStream(), Operator: r.client})
	if err != nil {
		return usagef("admin: %v", err)
	}
	if err := srv.Start(r.ctx); err != nil {
		return fmt.Errorf("%w: admin: %w", ErrFailed, err)
	}
	r.cfg.Logger(r.stderr).Info("admin API and dashboard listening", slog.String("addr", "http://"+srv.Addr()))
	fmt.Fprintf(r.stdout, "serving the admin API and dashboard on http://%s; Ctrl-C to stop\n", srv.Addr())
	<-r.ctx.Done()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 10*time.Second)
	defer cancel()
	return srv.Stop(ctx)
}
