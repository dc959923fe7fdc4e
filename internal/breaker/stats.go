package breaker

import "sync/atomic"

// Stats are a Worker's counters since it was created.
type Stats struct {
	// Batches and Messages count the fetched batches and their messages.
	Batches, Messages int64
	// Reports counts outcome reports folded; Ignored counts inputs skipped
	// as redeliveries (stream sequence at or below the breaker's last_seq).
	Reports, Ignored int64
	// Commands counts breaker commands applied; Duplicates those ignored as
	// already applied (same ce-id); NoOps those with nothing to do
	// (ErrNoChange, not due, not open, ...); Refused those refused (kill
	// switch, invalid), each published as a rejected event.
	Commands, Duplicates, NoOps, Refused int64
	// KillSwitchOverrides counts manual commands applied through the kill
	// switch with override_kill_switch.
	KillSwitchOverrides int64
	// Archived counts breakers archived (key deleted, archived event
	// published) by an archive command: cell breakers whose cell lost
	// their service, idle breakers.
	Archived int64
	// BreakerCap counts inputs rejected because they would have created a
	// breaker beyond Config.MaxBreakers (code breaker_cap), each terminated
	// and published to baldur.event.rejected.<kind>.
	BreakerCap int64
	// Governance counts governance commands applied; GovernanceNoOps those
	// that changed nothing.
	Governance, GovernanceNoOps int64
	// Rejected counts malformed messages terminated and published to
	// baldur.event.rejected.<kind>.
	Rejected int64
	// Writes counts breaker compare-and-set writes (one per service per
	// batch); BadState counts services skipped for an undecodable state.
	Writes, BadState int64
	// BatchErrors counts batches that could not be written and were
	// redelivered; Gaps counts missing deliveries detected; Resets counts
	// consumer resets to the ack floor.
	BatchErrors, Gaps, Resets int64
	// Partitions is the number of partitions owned now.
	Partitions int64
}

type counters struct {
	batches, messages, reports, ignored                   atomic.Int64
	commands, duplicates, noops, refused                  atomic.Int64
	killSwitchOverrides, governance, governanceNoops      atomic.Int64
	rejected, writes, badState, batchErrors, gaps, resets atomic.Int64
	partitions, archived, capped                          atomic.Int64
}

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() Stats {
	c := &w.stats
	return Stats{
		Batches: c.batches.Load(), Messages: c.messages.Load(),
		Reports: c.reports.Load(), Ignored: c.ignored.Load(),
		Commands: c.commands.Load(), Duplicates: c.duplicates.Load(), NoOps: c.noops.Load(), Refused: c.refused.Load(),
		KillSwitchOverrides: c.killSwitchOverrides.Load(), Archived: c.archived.Load(), BreakerCap: c.capped.Load(),
		Governance: c.governance.Load(), GovernanceNoOps: c.governanceNoops.Load(),
		Rejected: c.rejected.Load(), Writes: c.writes.Load(), BadState: c.badState.Load(),
		BatchErrors: c.batchErrors.Load(), Gaps: c.gaps.Load(), Resets: c.resets.Load(),
		Partitions: c.partitions.Load(),
	}
}
