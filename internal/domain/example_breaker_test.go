package domain_test

import (
	"fmt"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
)

// A breaker trips on its failure rate, admits a probe after the recovery
// timeout and closes after success_threshold probe successes, asking for the
// service's backlog to be replayed.
func ExampleBreaker_Apply() {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	env := domain.Env{Now: t0, Config: domain.DefaultConfig()}
	b := domain.NewBreaker("payments")

	show := func(res domain.Result) {
		for _, tr := range res.Transitions {
			fmt.Printf("%s: %s → %s (%s, replay %t) generation %d\n",
				tr.Kind(), tr.From, tr.To, tr.Trigger, tr.TriggerReplay, tr.Generation)
		}
	}

	b, res := b.Apply(domain.ReportInput(domain.Report{Node: "node-a", Seq: 1, Successes: 4, Failures: 6, TrailingFailures: 3}), env)
	show(res)
	fmt.Println("allows:", b.Allows(env.Now))

	env.Now = t0.Add(time.Minute)
	fmt.Println("allows:", b.Allows(env.Now))
	b, res = b.Apply(domain.PermitInput("node-a"), env)
	show(res)
	fmt.Println("permit granted:", res.Granted)

	b, res = b.Apply(domain.ReportInput(domain.Report{Node: "node-a", Seq: 2, Successes: 2}), env)
	show(res)
	fmt.Println("allows:", b.Allows(env.Now))
	// Output:
	// opened: closed → open (auto, replay false) generation 1
	// allows: deny
	// allows: ask_permit
	// half_opened: open → half_open (recovery_timeout, replay false) generation 2
	// permit granted: true
	// closed: half_open → closed (auto, replay true) generation 3
	// allows: allow
}

// Layers of configuration: the built-in defaults, the fleet's _defaults
// object, then the service's object.
func ExampleResolveConfig() {
	cfg, err := domain.ResolveConfig(
		[]byte(`{"failure_threshold": 8, "window": "30s"}`),
		[]byte(`{"failure_threshold": 3, "auto_replay": "continuous"}`))
	fmt.Println(cfg.FailureThreshold, cfg.Window, cfg.MinimumCalls, cfg.AutoReplay, err)

	_, err = domain.ResolveConfig(nil, []byte(`{"failure_treshold": 3}`))
	fmt.Println(err)
	// Output:
	// 3 30s 10 continuous <nil>
	// unknown breaker config field: service layer names "failure_treshold"
}
