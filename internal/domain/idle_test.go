package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

const week = 7 * 24 * time.Hour

func idleCmd(id string, period time.Duration) domain.Command {
	return domain.Command{ID: id, Action: domain.ActionArchive, Trigger: domain.TriggerIdle, TTL: domain.Duration(period),
		Actor: "wd-1", Reason: "no activity for a week"}
}

// TestActiveAt checks what counts as activity: a folded report and an
// applied command; a refused or no-op command, a redelivered report and a
// permit request do not.
func TestActiveAt(t *testing.T) {
	t.Parallel()
	h := newBrk(t, domain.DefaultConfig())
	require.True(t, h.b.IdleSince().IsZero(), "a new breaker records no activity")
	h.at(time.Minute).report("node-a", 1, 0, 0)
	require.Equal(t, brkT0.Add(time.Minute), h.b.ActiveAt)

	h.at(2 * time.Minute)
	res := h.cmd(manual(domain.ActionAuto)) // already auto: a no-op
	require.ErrorIs(t, res.Err, domain.ErrNoChange)
	res = h.cmd(domain.Command{Action: domain.ActionOpen}) // no actor: refused
	require.ErrorIs(t, res.Err, domain.ErrInvalidCommand)
	h.permit()
	h.apply(domain.ReportInput(domain.Report{Node: "node-a", Seq: h.seq, Successes: 1})) // redelivery
	require.Equal(t, brkT0.Add(time.Minute), h.b.ActiveAt, "nothing of that is activity")

	h.at(3 * time.Minute).cmd(manual(domain.ActionDisable))
	require.Equal(t, brkT0.Add(3*time.Minute), h.b.ActiveAt, "an applied command is")
	require.Equal(t, brkT0.Add(3*time.Minute), h.b.IdleSince())

	legacy := domain.NewBreaker("legacy")
	legacy.LastTransition = &domain.LastTransition{From: domain.StateOpen, To: domain.StateClosed, At: brkT0}
	require.Equal(t, brkT0, legacy.IdleSince(), "a state from before active_at: its last transition")
}

// TestArchiveIdle checks the fold's rule for archive with trigger idle: any
// name, archived only when CLOSED, auto, without manual or override record
// and without activity for the command's ttl; otherwise a no-op, so a report
// folded after the watchdog looked wins.
func TestArchiveIdle(t *testing.T) {
	t.Parallel()
	t.Run("idle breaker of any name", func(t *testing.T) {
		t.Parallel()
		for _, svc := range []string{"payments", "payments--eu2"} {
			h := newBrk(t, domain.DefaultConfig())
			h.b = domain.NewBreaker(svc)
			h.report("node-a", 3, 0, 0)
			gen := h.b.Generation
			h.env.Governance.KillSwitch.Active = true // not a manual action
			res := h.at(week).cmd(idleCmd("idle-1", week))
			require.NoError(t, res.Err)
			require.True(t, res.Applied)
			require.Empty(t, res.Transitions)
			_, cell, _ := domain.ParseCellBreakerName(svc)
			require.Equal(t, &domain.Archival{Service: svc, Cell: cell, State: domain.StateClosed, Mode: domain.ModeAuto,
				Generation: gen, Trigger: domain.TriggerIdle, Actor: "wd-1", Reason: "no activity for a week",
				At: brkT0.Add(week), Window: h.b.Window.WindowStats}, res.Archive)
			require.Equal(t, brkT0, h.b.ActiveAt, "archiving is not activity")
		}
	})
	t.Run("a report in between wins", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.report("node-a", 1, 0, 0)
		h.at(week).report("node-a", 1, 0, 0)
		res := h.cmd(idleCmd("idle-1", week))
		require.ErrorIs(t, res.Err, domain.ErrNoChange)
		require.Contains(t, res.Err.Error(), "not idle")
		require.Nil(t, res.Archive)
		require.False(t, res.Applied)
	})
	t.Run("ApplyAll: report then archive", func(t *testing.T) {
		t.Parallel()
		b := domain.NewBreaker("orders")
		b.ActiveAt = brkT0
		env := domain.Env{Now: brkT0.Add(2 * week), Config: domain.DefaultConfig()}
		_, res := b.ApplyAll([]domain.Input{
			domain.ReportInput(domain.Report{Node: "n", Seq: 1, Successes: 1}),
			domain.CommandInput(idleCmd("a", week)),
		}, env)
		require.ErrorIs(t, res.Err, domain.ErrNoChange)
		require.Nil(t, res.Archive)
	})
	kept := []struct {
		name  string
		setup func(h *brkHarness)
	}{
		{"open", func(h *brkHarness) { h.trip() }},
		{"half open", func(h *brkHarness) {
			h.trip()
			h.at(h.env.Config.RecoveryTimeout.D()).permit()
		}},
		{"forced closed", func(h *brkHarness) { h.cmd(manual(domain.ActionClose)) }},
		{"disabled", func(h *brkHarness) { h.cmd(manual(domain.ActionDisable)) }},
		{"override", func(h *brkHarness) {
			ft := 20
			c := manual(domain.ActionOverride)
			c.Override = &domain.ThresholdOverride{FailureThreshold: &ft}
			h.cmd(c)
		}},
	}
	for _, tc := range kept {
		t.Run("kept/"+tc.name, func(t *testing.T) {
			t.Parallel()
			h := newBrk(t, domain.DefaultConfig())
			tc.setup(h)
			res := h.at(100 * week).cmd(idleCmd("idle-1", week))
			require.ErrorIs(t, res.Err, domain.ErrNoChange, "long idle, yet not archivable")
			require.Nil(t, res.Archive)
		})
	}
	t.Run("refused without a ttl", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		res := h.cmd(idleCmd("idle-1", 0))
		require.ErrorIs(t, res.Err, domain.ErrInvalidCommand)
		require.Nil(t, res.Archive)
	})
	t.Run("legacy state without activity", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		res := h.cmd(idleCmd("idle-1", week))
		require.NoError(t, res.Err, "nothing recorded: the watchdog judged it by the key's age")
		require.NotNil(t, res.Archive)
	})
}
