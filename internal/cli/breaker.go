package cli

import (
	"fmt"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
)

func breakerCommands() []*command {
	return []*command{
		{
			noun: "breaker", verb: "list", needs: needNATS,
			summary:  "list every breaker: state, mode, failure rate, calls, time in state",
			examples: []string{"baldur breaker list", "baldur breaker list --json | jq '.[] | select(.state != \"closed\") | .service'"},
			run:      runBreakerList,
		},
		{
			noun: "breaker", verb: "get", args: []string{"SERVICE"}, needs: needNATS,
			summary:  "show one breaker in full",
			examples: []string{"baldur breaker get payments", "baldur breaker get payments --json"},
			run:      runBreakerGet,
		},
		{
			noun: "breaker", verb: "watch", needs: needNATS,
			summary:  "stream breaker state changes until Ctrl-C",
			examples: []string{"baldur breaker watch", "baldur breaker watch --json   # one JSON object per line"},
			run:      runBreakerWatch,
		},
		manualBreaker(domain.ActionOpen, "force the breaker open until --ttl (default: the service's manual_override_ttl)",
			"baldur breaker open payments --reason 'INC-4711: bank API down' --ttl 30m"),
		manualBreaker(domain.ActionClose, "force the breaker closed until --ttl; --trigger-replay replays its dead letters",
			"baldur breaker close payments --reason 'bank API back' --trigger-replay"),
		manualBreaker(domain.ActionAuto, "hand the breaker back to the rules (keeps its state)",
			"baldur breaker auto payments --reason 'incident over'"),
		manualBreaker(domain.ActionDisable, "disable the breaker: it always admits until 'auto'",
			"baldur breaker disable payments --reason 'load test'"),
		manualBreaker(domain.ActionMetricsOnly, "record outcomes but never trip until 'auto'",
			"baldur breaker metrics-only payments --reason 'tuning thresholds'"),
		manualBreaker(domain.ActionOverride, "override thresholds until --ttl (default 10m; no field: ×2 failure_threshold, ×3 recovery_timeout)",
			"baldur breaker override payments --reason 'regional failover' --failure-threshold 10 --recovery-timeout 3m --ttl 10m"),
		manualBreaker(domain.ActionClearOverride, "remove the threshold override",
			"baldur breaker clear-override payments --reason 'failover done'"),
	}
}

// breakerFlags are the flags of the manual breaker commands.
type breakerFlags struct {
	ttl                                         *time.Duration
	triggerReplay, overrideKillSwitch           *bool
	failureThreshold, minimumCalls              *int
	failureRateThreshold, slowCallRateThreshold *float64
	recoveryTimeout                             *time.Duration
}

func verbOf(a domain.Action) string {
	switch a {
	case domain.ActionMetricsOnly:
		return "metrics-only"
	case domain.ActionClearOverride:
		return "clear-override"
	}
	return string(a)
}

func manualBreaker(a domain.Action, summary string, examples ...string) *command {
	examples = append(examples, "baldur breaker "+verbOf(a)+" payments --reason 'INC-4711' --override-kill-switch --json")
	return &command{
		noun: "breaker", verb: verbOf(a), args: []string{"SERVICE"}, manual: true, needs: needNATS,
		summary: summary, examples: examples,
		flags: func(f *process.Flags) func() any {
			fs := f.FlagSet()
			bf := &breakerFlags{}
			bf.overrideKillSwitch = fs.Bool("override-kill-switch", false, "act although the kill switch is on (audited)")
			switch a {
			case domain.ActionOpen, domain.ActionClose, domain.ActionOverride:
				bf.ttl = fs.Duration("ttl", 0, "how long the manual mode or override lasts (1m..24h; 0: the default)")
			}
			if a == domain.ActionClose {
				bf.triggerReplay = fs.Bool("trigger-replay", false, "replay the service's dead letters once closed")
			}
			if a == domain.ActionOverride {
				bf.failureThreshold = fs.Int("failure-threshold", 0, "consecutive failures that trip")
				bf.failureRateThreshold = fs.Float64("failure-rate-threshold", 0, "failure rate in percent that trips")
				bf.minimumCalls = fs.Int("minimum-calls", 0, "calls in the window before the rate counts")
				bf.slowCallRateThreshold = fs.Float64("slow-call-rate-threshold", 0, "slow-call rate in percent that trips")
				bf.recoveryTimeout = fs.Duration("recovery-timeout", 0, "time open before probing")
			}
			return func() any { return bf }
		},
		run: func(r *runner, args []string) error { return runBreakerAction(r, a, args[0]) },
	}
}

func runBreakerAction(r *runner, a domain.Action, svc string) error {
	bf := r.extra.(*breakerFlags)
	cmd := events.BreakerCommand{Action: a, Actor: r.actor, Reason: r.reason, OverrideKillSwitch: *bf.overrideKillSwitch}
	if bf.ttl != nil {
		cmd.TTL = domain.Duration(*bf.ttl)
	}
	if bf.triggerReplay != nil {
		cmd.TriggerReplay = *bf.triggerReplay
	}
	if a == domain.ActionOverride {
		o := domain.ThresholdOverride{}
		if *bf.failureThreshold != 0 {
			o.FailureThreshold = bf.failureThreshold
		}
		if *bf.failureRateThreshold != 0 {
			o.FailureRateThreshold = bf.failureRateThreshold
		}
		if *bf.minimumCalls != 0 {
			o.MinimumCalls = bf.minimumCalls
		}
		if *bf.slowCallRateThreshold != 0 {
			o.SlowCallRateThreshold = bf.slowCallRateThreshold
		}
		if *bf.recoveryTimeout != 0 {
			d := domain.Duration(*bf.recoveryTimeout)
			o.RecoveryTimeout = &d
		}
		if o == (domain.ThresholdOverride{}) {
			// No field: the seed's defaults, from the breaker's base config.
			o = r.defaultOverride(svc)
		}
		cmd.Override = &o
	}
	if err := cmd.Validate(); err != nil {
		return usagef("breaker %s: %v", verbOf(a), err)
	}
	ctx, cancel := r.opCtx()
	defer cancel()
	res, err := r.client.BreakerCommand(ctx, svc, cmd)
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, res)
	}
	if res.NoChange {
		fmt.Fprintf(r.stdout, "no change: breaker %s is already %s (mode %s); nothing was sent\n", svc, res.Breaker.State, res.Breaker.Mode)
	} else {
		fmt.Fprintf(r.stdout, "applied: %s %s by %s (command %s)\n", verbOf(a), svc, r.actor, res.CommandID)
	}
	return breakerDetail(r.stdout, res.Breaker, r.now())
}

// defaultOverride returns the seed's default override (×2 failure
// threshold, ×3 recovery timeout) of svc's effective config.
func (r *runner) defaultOverride(svc string) domain.ThresholdOverride {
	ctx, cancel := r.opCtx()
	defer cancel()
	if e, err := r.client.ConfigGet(ctx, svc); err == nil {
		if c, ok := e.Effective.(domain.Config); ok {
			return c.DefaultThresholdOverride()
		}
	}
	return domain.DefaultConfig().DefaultThresholdOverride()
}

func runBreakerList(r *runner, _ []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	bs, err := r.client.Breakers(ctx)
	if err != nil {
		return err
	}
	if r.json {
		if bs == nil {
			bs = []domain.Breaker{}
		}
		return printJSON(r.stdout, bs)
	}
	now := r.now()
	t := newTable(r.stdout, "SERVICE", "STATE", "MODE", "FAILURE RATE", "CALLS", "IN STATE", "OVERRIDE")
	for _, b := range bs {
		ov := "-"
		if b.Override.Active(now) {
			ov = "until " + stamp(b.Override.ExpiresAt)
		}
		t.row(b.Service, string(b.State), string(b.Mode), percent(b.Window.FailureRate),
			fmt.Sprint(b.Window.Calls()), age(opsclient.TimeInState(b, now)), ov)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(bs) == 0 {
		fmt.Fprintln(r.stdout, "(no breakers yet)")
	}
	return nil
}

func runBreakerGet(r *runner, args []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	b, _, err := r.client.Breaker(ctx, args[0])
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, b)
	}
	return breakerDetail(r.stdout, b, r.now())
}

func runBreakerWatch(r *runner, _ []string) error {
	updates, err := r.client.WatchBreakers(r.ctx)
	if err != nil {
		return err
	}
	if !r.json {
		fmt.Fprintln(r.stdout, "watching breakers (a line per change of state, mode or generation); Ctrl-C to stop")
	}
	seen := map[string]watchKey{}
	for {
		var (
			u  opsclient.BreakerUpdate
			ok bool
		)
		select {
		case u, ok = <-updates:
		case <-r.natsClosed:
		}
		if !ok {
			if r.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: breaker watch: the connection to NATS was lost", process.ErrUnreachable)
		}
		// A fold rewrites the breaker at every batch of reports: only a
		// change of what admits calls is a line.
		k := watchKey{deleted: u.Deleted}
		if !u.Deleted {
			k.state, k.mode, k.gen, k.override = u.Breaker.State, u.Breaker.Mode, u.Breaker.Generation, u.Breaker.Override != nil
		}
		if have, ok := seen[u.Service]; ok && have == k {
			continue
		}
		seen[u.Service] = k
		if r.json {
			if err := writeLine(r, u); err != nil {
				return err
			}
			continue
		}
		at := r.now().UTC().Format("15:04:05")
		if u.Deleted {
			fmt.Fprintf(r.stdout, "%s  %-24s deleted\n", at, u.Service)
			continue
		}
		b := u.Breaker
		trig := ""
		if lt := b.LastTransition; lt != nil && !u.Initial {
			trig = "  (" + string(lt.Trigger) + ")"
		}
		fmt.Fprintf(r.stdout, "%s  %-24s %-9s %-13s %6s of %d calls%s\n", at, b.Service, b.State, b.Mode,
			percent(b.Window.FailureRate), b.Window.Calls(), trig)
	}
}

// watchKey is what `breaker watch` prints a line for a change of.
type watchKey struct {
	state    domain.State
	mode     domain.Mode
	gen      uint64
	override bool
	deleted  bool
}

// writeLine writes v as one line of JSON.
func writeLine(r *runner, v any) error {
	return jsonLine(r.stdout, v)
}
