package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func archiveCmd(id string) domain.Command {
	return domain.Command{ID: id, Action: domain.ActionArchive, Trigger: domain.TriggerCellUnmapped,
		Actor: "wd-1", Reason: "cell eu2 no longer owns payments (owner eu3)"}
}

// TestArchiveFold checks that an archive command folds to "delete the
// breaker": no transition, no new generation, the breaker's last state in
// the archival, and that it is refused for a breaker without a cell and
// without its trigger, actor or reason.
func TestArchiveFold(t *testing.T) {
	t.Parallel()
	t.Run("cell breaker", func(t *testing.T) {
		t.Parallel()
		h := newBrk(t, domain.DefaultConfig())
		h.b = domain.NewBreaker("payments--eu2")
		h.fail("node-a", 10)
		require.Equal(t, domain.StateOpen, h.b.State)
		gen := h.b.Generation
		h.env.Governance.KillSwitch.Active = true // archive is not a manual action

		res := h.at(time.Minute).cmd(archiveCmd("arch-1"))
		require.NoError(t, res.Err)
		require.True(t, res.Applied)
		require.True(t, res.Changed)
		require.Empty(t, res.Transitions, "archiving is not a transition")
		require.False(t, res.KillSwitchOverridden)
		require.Equal(t, gen, h.b.Generation, "no generation change")
		require.Equal(t, domain.StateOpen, h.b.State)
		require.Equal(t, &domain.Archival{Service: "payments--eu2", Cell: "eu2", State: domain.StateOpen,
			Mode: domain.ModeAuto, Generation: gen, Trigger: domain.TriggerCellUnmapped, Actor: "wd-1",
			Reason: "cell eu2 no longer owns payments (owner eu3)", At: brkT0.Add(time.Minute),
			Window: h.b.Window.WindowStats}, res.Archive)

		dup := h.cmd(archiveCmd("arch-1"))
		require.True(t, dup.Ignored, "a redelivered command is folded once")
		require.Nil(t, dup.Archive)
	})
	t.Run("ApplyAll", func(t *testing.T) {
		t.Parallel()
		b := domain.NewBreaker("orders--ap1")
		env := domain.Env{Now: brkT0, Config: domain.DefaultConfig()}
		next, res := b.ApplyAll([]domain.Input{
			domain.ReportInput(domain.Report{Node: "n", Seq: 1, Successes: 3}),
			domain.CommandInput(archiveCmd("a")),
		}, env)
		require.NoError(t, res.Err)
		require.NotNil(t, res.Archive)
		require.Equal(t, "ap1", res.Archive.Cell)
		require.EqualValues(t, 3, res.Archive.Window.Successes)
		require.Equal(t, b.Generation, next.Generation)
	})
	refused := []struct {
		name    string
		service string
		cmd     func(domain.Command) domain.Command
	}{
		{"no cell", "payments", func(c domain.Command) domain.Command { return c }},
		{"malformed cell", "payments--", func(c domain.Command) domain.Command { return c }},
		{"no trigger", "payments--eu2", func(c domain.Command) domain.Command { c.Trigger = ""; return c }},
		{"wrong trigger", "payments--eu2", func(c domain.Command) domain.Command { c.Trigger = domain.TriggerManual; return c }},
		{"no actor", "payments--eu2", func(c domain.Command) domain.Command { c.Actor = ""; return c }},
		{"no reason", "payments--eu2", func(c domain.Command) domain.Command { c.Reason = ""; return c }},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			t.Parallel()
			h := newBrk(t, domain.DefaultConfig())
			h.b = domain.NewBreaker(tc.service)
			res := h.cmd(tc.cmd(archiveCmd("x")))
			require.ErrorIs(t, res.Err, domain.ErrInvalidCommand)
			require.False(t, res.Applied)
			require.Nil(t, res.Archive)
		})
	}
}

func TestArchiveActionIsNotManual(t *testing.T) {
	t.Parallel()
	require.True(t, domain.ActionArchive.Valid())
	require.False(t, domain.ActionArchive.Manual())
	require.Contains(t, domain.Actions, domain.ActionArchive)
}
