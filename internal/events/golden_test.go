package events

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the sample payloads")

func ptr[T any](v T) *T { return &v }

// golden is one sample payload, its golden file and its strict decoder.
type golden struct {
	file   string
	value  any
	decode func([]byte) (any, error)
}

func decoderOf[T any](f func([]byte) (T, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) { return f(b) }
}

func goldens() []golden {
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	return []golden{
		{"outcome_report.json", OutcomeReport{Successes: 120, Failures: 3, SlowCalls: 1, TrailingFailures: 2,
			FailureTypes: map[string]int64{"TIMEOUT": 2, "HTTP_503": 1}}, decoderOf(DecodeOutcome)},
		{"breaker_command_open.json", BreakerCommand{Action: domain.ActionOpen, Actor: "oncall-sre",
			Reason: "vendor maintenance", TTL: domain.Duration(90 * time.Minute), OverrideKillSwitch: true}, decoderOf(DecodeControl)},
		{"breaker_command_close.json", BreakerCommand{Action: domain.ActionClose, Actor: "oncall-sre",
			Reason: "vendor is back", TriggerReplay: true}, decoderOf(DecodeControl)},
		{"breaker_command_override.json", BreakerCommand{Action: domain.ActionOverride, Actor: "mesh",
			Reason: "regional failover", TTL: domain.Duration(10 * time.Minute), Override: &domain.ThresholdOverride{
				FailureThreshold: ptr(10), FailureRateThreshold: ptr(80.0), MinimumCalls: ptr(20),
				SlowCallRateThreshold: ptr(90.0), RecoveryTimeout: ptr(domain.Duration(3 * time.Minute))}}, decoderOf(DecodeControl)},
		{"breaker_command_half_open.json", BreakerCommand{Action: domain.ActionHalfOpen,
			Trigger: domain.TriggerRecoveryTimeout}, decoderOf(DecodeControl)},
		{"breaker_command_archive.json", BreakerCommand{Action: domain.ActionArchive, Actor: "watchdog-1",
			Reason: "cell eu2 no longer owns payments on the ring (owner eu3)", Trigger: domain.TriggerCellUnmapped}, decoderOf(DecodeControl)},
		{"governance_command.json", GovernanceCommand{Action: ActionSetEmergencyLevel,
			Level: ptr(domain.EmergencyLevel2), Actor: "incident-commander", Reason: "INC-4711"}, decoderOf(DecodeGovernance)},
		{"governance_command_slo_target.json", GovernanceCommand{Action: ActionSetSLOTarget, SLOTarget: ptr(0.999),
			SLOWindow: domain.Duration(30 * 24 * time.Hour), Actor: "sre-lead", Reason: "fleet SLO for Q3"}, decoderOf(DecodeGovernance)},
		{"governance_command_kill_switch.json", GovernanceCommand{Action: ActionKillSwitchOn,
			Actor: "incident-commander", Reason: "INC-4711"}, decoderOf(DecodeGovernance)},
		{"dead_letter.json", DeadLetter{Domain: domain.DomainExternalService, FailureType: "PG_TIMEOUT",
			Operation: "charge", IdempotencyKey: "order-123-charge", EntityType: "order", EntityID: "123",
			Request: json.RawMessage(`{"amount":1999,"currency":"EUR","order":"123"}`), ErrorCode: "504",
			ErrorMessage: "upstream timeout", Priority: domain.PriorityCritical, MaxRetries: ptr(2),
			Metadata: json.RawMessage(`{"region":"eu-west-1"}`)}, decoderOf(DecodeDeadLetter)},
		{"replay_reply_ok.json", ReplayReply{OK: true}, decoderOf(DecodeReplayReply)},
		{"replay_reply_failed.json", ReplayReply{Error: "card processor unavailable", Retryable: true}, decoderOf(DecodeReplayReply)},
		{"permit_request.json", PermitRequest{Node: "payments-7f9c-2"}, decoderOf(DecodePermitRequest)},
		{"permit_reply.json", PermitReply{Granted: true, State: domain.StateHalfOpen, Generation: 7}, decoderOf(DecodePermitReply)},
		{"transition_event.json", TransitionEvent{Service: "payments", From: domain.StateClosed, To: domain.StateOpen,
			FromMode: domain.ModeAuto, Mode: domain.ModeAuto, Trigger: domain.TriggerAuto, Generation: 6, At: at,
			Window: WindowSummary{Successes: 40, Failures: 60, SlowCalls: 3, FailureRate: 60, SlowCallRate: 3, FailingNodes: 3}}, decoderOf(DecodeTransitionEvent)},
		{"transition_event_closed.json", TransitionEvent{Service: "payments", From: domain.StateHalfOpen, To: domain.StateClosed,
			FromMode: domain.ModeAuto, Mode: domain.ModeAuto, Trigger: domain.TriggerAuto, TriggerReplay: true, Generation: 8, At: at,
			Window: WindowSummary{Successes: 2}}, decoderOf(DecodeTransitionEvent)},
		{"breaker_archived_event.json", ArchivedEvent{Service: "payments--eu2", Cell: "eu2", State: domain.StateClosed,
			Mode: domain.ModeAuto, Generation: 4, Trigger: domain.TriggerCellUnmapped, Actor: "watchdog-1",
			Reason: "cell eu2 no longer owns payments on the ring (owner eu3)", At: at,
			Window: WindowSummary{Successes: 97, Failures: 3, FailureRate: 3, FailingNodes: 1}}, decoderOf(DecodeArchivedEvent)},
		{"replay_completed.json", ReplayEntryEvent{Service: "payments", EntryID: "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f",
			Operation: "charge", Attempt: 1, Status: domain.DLQReplayed, At: at}, decoderOf(DecodeReplayEntryEvent)},
		{"replay_failed.json", ReplayEntryEvent{Service: "payments", EntryID: "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f",
			Operation: "charge", Attempt: 1, Status: domain.DLQPending, Error: "card processor unavailable",
			Retryable: true, NextAttemptAt: at.Add(5 * time.Second), At: at}, decoderOf(DecodeReplayEntryEvent)},
		{"replay_escalated.json", ReplayEntryEvent{Service: "payments", EntryID: "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f",
			Operation: "charge", Attempt: 3, Status: domain.DLQRequiresReview, Error: "card declined",
			Reason: string(domain.ResolutionMaxRetriesExhausted), At: at}, decoderOf(DecodeReplayEntryEvent)},
		{"replay_blocked.json", ReplayBlockedEvent{Service: "payments", Gate: domain.BlockerErrorBudget,
			Reason: "error budget at 4% remaining, below the 10% gate", At: at}, decoderOf(DecodeReplayBlockedEvent)},
		{"replay_batch_completed.json", ReplayBatchEvent{Service: "payments", Trigger: BatchTriggerCircuitClose,
			Total: 120, SuccessCount: 110, FailedCount: 8, SkippedCount: 2, EscalatedCount: 3, Batches: 3,
			PriorityUsed: true, DomainsProcessed: []string{"external_service", "notification"},
			StartedAt: at.Add(-40 * time.Second), At: at}, decoderOf(DecodeReplayBatchEvent)},
		{"governance_change.json", GovernanceChange{Key: GovernanceEmergencyLevel, Old: json.RawMessage(`{"level":0}`),
			New: json.RawMessage(`{"level":2}`), Actor: "incident-commander", Reason: "INC-4711", At: at}, decoderOf(DecodeGovernanceChange)},
		{"rejected.json", Rejected{Kind: RejectedOutcome, Code: "invalid_value", Subject: "baldur.outcome.payments",
			Reason: `outcome report: field "trailing_failures" is 5, more than failures (3): events: invalid value`,
			CEID:   "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f", CEType: "baldur.outcome.v1", Source: "payments-7f9c-2",
			Size: 71, At: at}, decoderOf(DecodeRejected)},
		{"dlq_sla_breached.json", SLABreachedEvent{Service: "payments", EntryID: "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f",
			Domain: domain.DomainExternalService, SLAHours: 24, At: at}, decoderOf(DecodeSLABreachedEvent)},
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, g := range goldens() {
		t.Run(g.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", "golden", g.file)
			got, err := json.MarshalIndent(g.value, "", "  ")
			require.NoError(t, err)
			got = append(got, '\n')
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test -run TestGolden -update to create it")
			require.Equal(t, string(want), string(got), "encode → golden")

			decoded, err := g.decode(want)
			require.NoError(t, err, "golden → decode")
			require.Equal(t, g.value, decoded, "golden → decode round trip")

			compact, err := json.Marshal(decoded)
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, json.Compact(&buf, want))
			require.Equal(t, buf.String(), string(compact), "decode → encode is the golden file")
		})
	}
}

func TestGoldenEnvelope(t *testing.T) {
	t.Parallel()
	h := NewEnvelope(TypeDLQ, testID, "payments-7f9c-2", testTime).Header()
	got, err := json.MarshalIndent(h, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", "envelope_headers.json")
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}
