package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/process"
)

// Environment twins of the flags of `baldur admin`.
const (
	// EnvAdminToken is the twin of --admin-token.
	EnvAdminToken = "BALDUR_ADMIN_TOKEN"
	// EnvAdminOperatorsFile is the twin of --admin-operators-file.
	EnvAdminOperatorsFile = "BALDUR_ADMIN_OPERATORS_FILE"
)

// adminFlags are the flags of `baldur admin` beyond the shared ones.
type adminFlags struct {
	token, operators *string
}

func adminCommands() []*command {
	return []*command{{
		noun: "admin", needs: needNATS | needDBIfSet | wantAuditKey | needReconnect,
		summary: "serve the admin HTTP API and the live dashboard until Ctrl-C",
		examples: []string{"baldur admin --http-addr 127.0.0.1:8080 --admin-token \"$TOKEN\"",
			"BALDUR_ADMIN_TOKEN=s3cret baldur admin --http-addr :8080 --database-url postgres://baldur@db/baldur"},
		flags: func(f *process.Flags) func() any {
			af := &adminFlags{
				token: f.String("admin-token", EnvAdminToken, "", "shared bearer token for writes, recorded as the X-Baldur-Actor header says (empty: none)"),
				operators: f.String("admin-operators-file", EnvAdminOperatorsFile, "",
					"file of name:token lines, a token per operator: their writes are recorded under their name"),
			}
			f.FlagSet().Lookup("http-addr").Usage = "address of the admin API and dashboard (default " + admin.DefaultAddr + ") ($" + process.EnvHTTPAddr + ")"
			return func() any { return af }
		},
		run: runAdmin,
	}}
}

func runAdmin(r *runner, _ []string) error {
	addr := r.cfg.HTTPAddr
	if addr == "" {
		addr = admin.DefaultAddr
	}
	af := r.extra.(*adminFlags)
	var ops []admin.OperatorToken
	if *af.operators != "" {
		b, err := os.ReadFile(*af.operators)
		if err != nil {
			return usagef("admin: --admin-operators-file ($%s): %v", EnvAdminOperatorsFile, err)
		}
		if ops, err = admin.ParseOperatorTokens(b); err != nil {
			return usagef("admin: --admin-operators-file %s: %v", *af.operators, err)
		}
	}
	srv, err := admin.New(admin.Config{
		Addr: addr, AdminToken: *af.token, Operators: ops, Logger: r.cfg.Logger(r.stderr),
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
