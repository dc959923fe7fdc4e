package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
)

func governanceCommands() []*command {
	return []*command{
		{
			noun: "governance", verb: "status", needs: needNATS,
			summary:  "show the kill switch, emergency level, error budget and fleet failure rate",
			examples: []string{"baldur governance status", "baldur governance status --json"},
			run:      runGovernanceStatus,
		},
		{
			noun: "governance", verb: "kill-switch", args: []string{"on|off"}, manual: true, needs: needNATS,
			summary: "turn the kill switch on (stops automated replay, refuses manual breaker control) or off",
			examples: []string{"baldur governance kill-switch on --reason 'INC-4711: replay storm'",
				"baldur governance kill-switch off --reason 'INC-4711 resolved'"},
			check: func(a []string) error { _, err := killSwitchAction(a[0]); return err },
			run:   runKillSwitch,
		},
		{
			noun: "governance", verb: "emergency", args: []string{"LEVEL"}, manual: true, needs: needNATS,
			summary: "set the emergency level: 0|NORMAL, 1|LEVEL_1, 2|LEVEL_2, 3|LEVEL_3",
			examples: []string{"baldur governance emergency 2 --reason 'INC-4711'",
				"baldur governance emergency NORMAL --reason 'all clear'"},
			check: func(a []string) error { _, err := emergencyLevel(a[0]); return err },
			run:   runEmergency,
		},
		{
			noun: "governance", verb: "slo-target", args: []string{"TARGET"}, manual: true, needs: needNATS,
			summary: "set the fleet's SLO target (e.g. 0.999) and window, which turn the error-budget gate on; 0 turns it off",
			examples: []string{"baldur governance slo-target 0.999 --window 720h --reason 'Q3 objective'",
				"baldur governance slo-target 0 --reason 'gate off during migration'"},
			flags: func(f *process.Flags) func() any {
				w := f.FlagSet().Duration("window", 0, "SLO window, 1h..2160h (default 720h)")
				return func() any { return w }
			},
			check: func(a []string) error { _, err := sloTarget(a[0]); return err },
			run:   runSLOTarget,
		},
	}
}

func runGovernanceStatus(r *runner, _ []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	st, err := r.client.GovernanceState(ctx)
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, st)
	}
	return governanceDetail(r, st)
}

func governanceDetail(r *runner, st opsclient.GovernanceStatus) error {
	t := newTable(r.stdout)
	ks := "off"
	if st.KillSwitch.Active {
		ks = "ON"
	}
	if st.KillSwitch.Actor != "" {
		ks += fmt.Sprintf(" (by %s: %s, %s)", st.KillSwitch.Actor, st.KillSwitch.Reason, stamp(st.KillSwitch.UpdatedAt))
	}
	t.row("kill switch", ks)
	lvl := fmt.Sprintf("%d %s", int(st.Emergency.Level), st.Emergency.Level)
	if st.Emergency.Actor != "" {
		lvl += fmt.Sprintf(" (by %s: %s, %s)", st.Emergency.Actor, st.Emergency.Reason, stamp(st.Emergency.UpdatedAt))
	}
	t.row("emergency level", lvl)
	eb := "gate off (no SLO target)"
	if b := st.ErrorBudget; b.Enabled {
		eb = fmt.Sprintf("%s remaining (%s) of SLO %s over %s: %d failed of %d calls", percent(b.Remaining*100),
			orDash(string(b.Level)), strconv.FormatFloat(b.SLOTarget, 'f', -1, 64), b.Window(), b.FailedCalls, b.TotalCalls)
	}
	t.row("error budget", eb)
	agg := "-"
	if a := st.Aggregate; !a.UpdatedAt.IsZero() {
		agg = fmt.Sprintf("%s over %d breakers (%s)", percent(a.FailureRate*100), a.Breakers, stamp(a.UpdatedAt))
	}
	t.row("fleet failure rate", agg)
	return t.flush()
}

func runGovernance(r *runner, cmd events.GovernanceCommand, what string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	res, err := r.client.Governance(ctx, cmd)
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, res)
	}
	if res.NoChange {
		fmt.Fprintf(r.stdout, "no change: %s already; nothing was sent\n", what)
	} else {
		fmt.Fprintf(r.stdout, "applied: %s by %s (command %s)\n", what, r.actor, res.CommandID)
	}
	return governanceDetail(r, res.Status)
}

func killSwitchAction(arg string) (events.GovernanceAction, error) {
	switch strings.ToLower(arg) {
	case "on":
		return events.ActionKillSwitchOn, nil
	case "off":
		return events.ActionKillSwitchOff, nil
	}
	return "", usagef("governance kill-switch: want on or off, not %q", arg)
}

func emergencyLevel(arg string) (domain.EmergencyLevel, error) {
	lvl, err := domain.ParseEmergencyLevel(arg)
	if err != nil {
		return 0, usagef("governance emergency: %v", err)
	}
	return lvl, nil
}

func sloTarget(arg string) (float64, error) {
	target, err := strconv.ParseFloat(arg, 64)
	if err != nil {
		return 0, usagef("governance slo-target: %q is not a number (e.g. 0.999, or 0 to turn the gate off)", arg)
	}
	return target, nil
}

func runKillSwitch(r *runner, args []string) error {
	action, err := killSwitchAction(args[0])
	if err != nil {
		return err
	}
	cmd := events.GovernanceCommand{Action: action, Actor: r.actor, Reason: r.reason}
	return runGovernance(r, cmd, "kill switch "+strings.ToLower(args[0]))
}

func runEmergency(r *runner, args []string) error {
	lvl, err := emergencyLevel(args[0])
	if err != nil {
		return err
	}
	cmd := events.GovernanceCommand{Action: events.ActionSetEmergencyLevel, Level: &lvl, Actor: r.actor, Reason: r.reason}
	return runGovernance(r, cmd, "emergency level "+lvl.String())
}

func runSLOTarget(r *runner, args []string) error {
	target, err := sloTarget(args[0])
	if err != nil {
		return err
	}
	window := *r.extra.(*time.Duration)
	cmd := events.GovernanceCommand{Action: events.ActionSetSLOTarget, SLOTarget: &target, SLOWindow: domain.Duration(window),
		Actor: r.actor, Reason: r.reason}
	if err := cmd.Validate(); err != nil {
		return usagef("governance slo-target: %v", err)
	}
	what := "SLO target " + args[0]
	if target == 0 {
		what = "error-budget gate off"
	}
	return runGovernance(r, cmd, what)
}
