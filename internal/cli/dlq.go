package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/replay"
)

// filterFlags are the flags that select dead letters.
type filterFlags struct {
	service, status, domain, failureType *string
	olderThan, newerThan                 *time.Duration
	limit                                *int
	cursor                               *string
	dryRun                               *bool
	note                                 *string
}

func addFilterFlags(fs *flag.FlagSet, ff *filterFlags, statusHelp string) {
	ff.service = fs.String("service", "", "only this service")
	ff.status = fs.String("status", "", statusHelp)
	ff.domain = fs.String("domain", "", "only this failure domain ("+joinDomains()+")")
	ff.failureType = fs.String("failure-type", "", "only this failure type")
	ff.olderThan = fs.Duration("older-than", 0, "only entries older than this (e.g. 1h)")
	ff.newerThan = fs.Duration("newer-than", 0, "only entries at most this old (e.g. 30m)")
}

func joinDomains() string {
	s := make([]string, len(domain.FailureDomains))
	for i, d := range domain.FailureDomains {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

func (ff *filterFlags) filter() replay.DLQFilter {
	f := replay.DLQFilter{Service: *ff.service, Domain: domain.FailureDomain(*ff.domain), FailureType: *ff.failureType,
		OlderThan: domain.Duration(*ff.olderThan), NewerThan: domain.Duration(*ff.newerThan)}
	for s := range strings.SplitSeq(*ff.status, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.Status = append(f.Status, domain.DLQStatus(s))
		}
	}
	return f
}

func dlqCommands() []*command {
	idCmd := func(verb, summary string, examples ...string) *command {
		return &command{noun: "dlq", verb: verb, args: []string{"ID"}, manual: verb != "show", needs: needNATS,
			summary: summary, examples: examples}
	}
	show := idCmd("show", "show one dead letter in full, with its request and error history",
		"baldur dlq show 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f", "baldur dlq show 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f --json")
	show.run = runDLQShow
	rep := idCmd("replay", "replay one entry now (pending, requires_review or reviewing), within governance and the breaker",
		"baldur dlq replay 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f --reason 'customer asked'")
	rep.run = runDLQReplay
	req := idCmd("requeue", "put an entry that requires review back to pending with fresh attempts",
		"baldur dlq requeue 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f --reason 'vendor fixed the bug'")
	req.run = runDLQRequeue
	disc := idCmd("discard", "close an entry as rejected (it will never be replayed)",
		"baldur dlq discard 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f --reason 'duplicate order' --note 'refunded by hand'")
	disc.run = func(r *runner, a []string) error { return runDLQClose(r, events.DLQOpDiscard, a[0]) }
	res := idCmd("resolve", "close an entry as resolved by a manual fix",
		"baldur dlq resolve 0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f --reason 'fixed in the ledger' --note 'JIRA-12'")
	res.run = func(r *runner, a []string) error { return runDLQClose(r, events.DLQOpResolve, a[0]) }
	noteFlag := func(f *process.Flags) func() any {
		ff := &filterFlags{note: f.FlagSet().String("note", "", "resolution note (default: the reason)")}
		return func() any { return ff }
	}
	disc.flags, res.flags = noteFlag, noteFlag

	return []*command{
		{
			noun: "dlq", verb: "list", needs: needNATS,
			summary: "list dead letters, oldest first, with filters and paging",
			examples: []string{"baldur dlq list --service payments --status pending,requires_review",
				"baldur dlq list --older-than 24h --limit 20", "baldur dlq list --json | jq -r '.entries[].id'"},
			flags: func(f *process.Flags) func() any {
				ff := &filterFlags{}
				addFilterFlags(f.FlagSet(), ff, "only these statuses, comma separated")
				ff.limit = f.FlagSet().Int("limit", 50, "page size, 1..1000")
				ff.cursor = f.FlagSet().String("cursor", "", "continue from a previous page's next cursor")
				return func() any { return ff }
			},
			run: runDLQList,
		},
		show, rep,
		{
			noun: "dlq", verb: "replay-batch", manual: true, needs: needNATS,
			summary: "replay the entries a filter selects (default status pending), oldest first; --dry-run counts them",
			examples: []string{"baldur dlq replay-batch --service payments --dry-run --reason 'how many?'",
				"baldur dlq replay-batch --service payments --status requires_review --limit 50 --reason 'vendor fixed'"},
			flags: func(f *process.Flags) func() any {
				ff := &filterFlags{}
				addFilterFlags(f.FlagSet(), ff, "statuses to replay from: pending, requires_review, reviewing (default pending)")
				ff.limit = f.FlagSet().Int("limit", replay.DefaultReplayBatchLimit, "most entries to replay")
				ff.dryRun = f.FlagSet().Bool("dry-run", false, "count what would be replayed; replay nothing")
				return func() any { return ff }
			},
			run: runDLQReplayBatch,
		},
		req, disc, res,
		{
			noun: "dlq", verb: "stats", needs: needNATS,
			summary:  "count dead letters by service and status",
			examples: []string{"baldur dlq stats", "baldur dlq stats --json"},
			run:      runDLQStats,
		},
	}
}

func (r *runner) dlq(op events.DLQOp, req, resp any) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	return r.client.DLQ(ctx, op, req, resp)
}

func runDLQList(r *runner, _ []string) error {
	ff := r.extra.(*filterFlags)
	var reply replay.DLQListReply
	if err := r.dlq(events.DLQOpList, replay.DLQListRequest{DLQFilter: ff.filter(), Limit: *ff.limit, Cursor: *ff.cursor}, &reply); err != nil {
		return err
	}
	if r.json {
		if reply.Entries == nil {
			reply.Entries = []replay.DLQEntryReply{}
		}
		return printJSON(r.stdout, reply)
	}
	now := r.now()
	t := newTable(r.stdout, "ID", "SERVICE", "STATUS", "DOMAIN", "TYPE", "RETRIES", "AGE", "LAST ERROR")
	for _, e := range reply.Entries {
		t.row(e.ID, e.Service, string(e.Status), string(e.Domain), e.FailureType,
			fmt.Sprintf("%d/%d", e.RetryCount, e.MaxRetries), since(now, e.CreatedAt), clip(orDash(e.LastError), 60))
	}
	if err := t.flush(); err != nil {
		return err
	}
	switch {
	case len(reply.Entries) == 0:
		fmt.Fprintln(r.stdout, "(no dead letters match)")
	case reply.NextCursor != "":
		fmt.Fprintf(r.stdout, "more: --cursor %s\n", reply.NextCursor)
	}
	return nil
}

func entryDetail(r *runner, e replay.DLQEntryReply) error {
	now := r.now()
	t := newTable(r.stdout)
	t.row("id", e.ID)
	t.row("service", e.Service)
	t.row("status", string(e.Status))
	t.row("domain / type", string(e.Domain)+" / "+e.FailureType)
	t.row("operation", e.Operation)
	t.row("priority", string(e.Priority))
	if e.EntityType != "" || e.EntityID != "" {
		t.row("entity", e.EntityType+" "+e.EntityID)
	}
	t.row("retries", fmt.Sprintf("%d of %d", e.RetryCount, e.MaxRetries))
	t.row("created", stamp(e.CreatedAt)+" ("+since(now, e.CreatedAt)+" ago)")
	t.row("updated", stamp(e.UpdatedAt))
	if !e.NextAttemptAt.IsZero() {
		t.row("next attempt", stamp(e.NextAttemptAt))
	}
	t.row("expires", stamp(e.ExpiresAt))
	t.row("error", orDash(strings.TrimSpace(e.ErrorCode+" "+e.ErrorMessage)))
	t.row("last error", orDash(e.LastError))
	if e.ResolutionType != "" {
		t.row("resolution", string(e.ResolutionType)+": "+e.ResolutionNote+" ("+stamp(e.ResolvedAt)+")")
	}
	if e.RecommendedAction != "" {
		t.row("recommended", string(e.RecommendedAction))
	}
	if !e.SLABreachedAt.IsZero() {
		t.row("SLA breached", stamp(e.SLABreachedAt))
	}
	if len(e.Request) > 0 {
		t.row("request", clip(string(e.Request), 200))
	}
	for i, h := range e.ErrorHistory {
		t.row(fmt.Sprintf("attempt %d", i+1), clip(fmt.Sprintf("%+v", h), 120))
	}
	return t.flush()
}

func runDLQShow(r *runner, args []string) error {
	var e replay.DLQEntryReply
	if err := r.dlq(events.DLQOpGet, replay.DLQGetRequest{ID: args[0]}, &e); err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, e)
	}
	return entryDetail(r, e)
}

func summaryLine(s replay.ReplaySummary) string {
	line := fmt.Sprintf("%s: %d replayed, %d failed, %d skipped, %d escalated of %d (%s)",
		s.Service, s.SuccessCount, s.FailedCount, s.SkippedCount, s.EscalatedCount, s.Total, orDash(s.Stop))
	if s.GovernanceBlocked {
		line += "; blocked by governance: " + s.GovernanceBlockReason
	}
	if s.InflightSkipped {
		line += "; another replay of the service is in flight"
	}
	return line
}

// replayFailed returns an error wrapping ErrFailed when a summary reports a
// blocked or failed replay.
func replayFailed(ss ...replay.ReplaySummary) error {
	for _, s := range ss {
		switch {
		case s.GovernanceBlocked:
			return fmt.Errorf("%w: replay of %s blocked by governance: %s", ErrFailed, s.Service, s.GovernanceBlockReason)
		case s.FailedCount > 0 || s.EscalatedCount > 0:
			return fmt.Errorf("%w: %d of %d replays of %s failed", ErrFailed, s.FailedCount+s.EscalatedCount, s.Total, s.Service)
		case s.InflightSkipped:
			return fmt.Errorf("%w: another replay of %s is in flight; try again when it ends", ErrFailed, s.Service)
		}
	}
	return nil
}

func runDLQReplay(r *runner, args []string) error {
	var reply replay.DLQReplayReply
	if err := r.dlq(events.DLQOpReplay, replay.DLQReplayRequest{ID: args[0], Actor: r.actor, Reason: r.reason}, &reply); err != nil {
		return err
	}
	if r.json {
		if err := printJSON(r.stdout, reply); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(r.stdout, "replay %s: %s\n", args[0], summaryLine(reply.Result))
		if err := entryDetail(r, reply.Entry); err != nil {
			return err
		}
	}
	if reply.Result.Total == 0 && !reply.Result.GovernanceBlocked && !reply.Result.InflightSkipped &&
		reply.Entry.Status != domain.DLQReplayed {
		return fmt.Errorf("%w: entry %s was not replayed (%s)", ErrFailed, args[0], orDash(reply.Result.Stop))
	}
	return replayFailed(reply.Result)
}

func runDLQReplayBatch(r *runner, _ []string) error {
	ff := r.extra.(*filterFlags)
	req := replay.DLQReplayBatchRequest{DLQFilter: ff.filter(), DryRun: *ff.dryRun, Limit: *ff.limit, Actor: r.actor, Reason: r.reason}
	var reply replay.DLQReplayBatchReply
	if err := r.dlq(events.DLQOpReplayBatch, req, &reply); err != nil {
		if !req.DryRun && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			// The batch runs on the replay-worker whatever the CLI waits:
			// not an unreachable NATS, and not known to have failed.
			return fmt.Errorf("%w: replay-batch: no answer within --timeout %s; the batch may still be running on the replay-worker "+
				"(its results: baldur dlq stats, the audit log, events baldur.event.replay.<svc>.batch_completed); wait longer with --timeout",
				ErrFailed, r.timeout)
		}
		return err
	}
	if r.json {
		if err := printJSON(r.stdout, reply); err != nil {
			return err
		}
	} else if reply.DryRun {
		fmt.Fprintf(r.stdout, "dry run: %d entries match, %d would be replayed (limit %d)", reply.Matched, reply.Count-reply.Blocked, *ff.limit)
		if reply.Blocked > 0 {
			fmt.Fprintf(r.stdout, ", %d would be blocked", reply.Blocked)
		}
		fmt.Fprintln(r.stdout, "; nothing was replayed")
		for _, s := range reply.Results {
			if s.Stop != "" {
				fmt.Fprintf(r.stdout, "  %s: %d would not be replayed: %s\n", s.Service, s.Total, orDash(cmp.Or(s.GovernanceBlockReason, s.Stop)))
			}
		}
	} else {
		fmt.Fprintf(r.stdout, "replayed %d of %d selected (%d matching)", reply.Replayed, reply.Count, reply.Matched)
		if reply.Blocked > 0 {
			fmt.Fprintf(r.stdout, "; %d blocked", reply.Blocked)
		}
		fmt.Fprintln(r.stdout)
		for _, s := range reply.Results {
			fmt.Fprintln(r.stdout, "  "+summaryLine(s))
		}
	}
	return replayFailed(reply.Results...)
}

func runDLQRequeue(r *runner, args []string) error {
	var e replay.DLQEntryReply
	if err := r.dlq(events.DLQOpRequeue, replay.DLQRequeueRequest{ID: args[0], Actor: r.actor, Reason: r.reason}, &e); err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, e)
	}
	fmt.Fprintf(r.stdout, "requeued %s: %s\n", e.ID, e.Status)
	return entryDetail(r, e)
}

func runDLQClose(r *runner, op events.DLQOp, id string) error {
	ff := r.extra.(*filterFlags)
	var e replay.DLQEntryReply
	if err := r.dlq(op, replay.DLQCloseRequest{ID: id, Actor: r.actor, Reason: r.reason, Note: *ff.note}, &e); err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, e)
	}
	fmt.Fprintf(r.stdout, "%s %s: %s\n", map[events.DLQOp]string{events.DLQOpDiscard: "discarded", events.DLQOpResolve: "resolved"}[op], e.ID, e.Status)
	return entryDetail(r, e)
}

func runDLQStats(r *runner, _ []string) error {
	// Every page: a fleet of many services is counted in pages of
	// replay.MaxStatsLimit.
	var reply replay.DLQStatsReply
	for after := ""; ; {
		var page replay.DLQStatsReply
		if err := r.dlq(events.DLQOpStats, replay.DLQStatsRequest{After: after, Limit: replay.MaxStatsLimit}, &page); err != nil {
			return err
		}
		if reply.Counts == nil {
			reply.Counts = map[string]map[domain.DLQStatus]int64{}
		}
		maps.Copy(reply.Counts, page.Counts)
		reply.Totals, reply.Services = page.Totals, page.Services
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if r.json {
		if reply.Counts == nil {
			reply.Counts = map[string]map[domain.DLQStatus]int64{}
		}
		return printJSON(r.stdout, reply)
	}
	var statuses []domain.DLQStatus
	for _, st := range domain.DLQStatuses {
		for _, m := range reply.Counts {
			if m[st] > 0 {
				statuses = append(statuses, st)
				break
			}
		}
	}
	header := []string{"SERVICE"}
	for _, st := range statuses {
		header = append(header, strings.ToUpper(string(st)))
	}
	header = append(header, "TOTAL")
	t := newTable(r.stdout, header...)
	svcs := make([]string, 0, len(reply.Counts))
	for s := range reply.Counts {
		svcs = append(svcs, s)
	}
	slices.Sort(svcs)
	for _, s := range svcs {
		row := []string{s}
		var total int64
		for _, st := range statuses {
			row = append(row, fmt.Sprint(reply.Counts[s][st]))
			total += reply.Counts[s][st]
		}
		t.row(append(row, fmt.Sprint(total))...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(svcs) == 0 {
		fmt.Fprintln(r.stdout, "(the dead-letter queue is empty)")
	}
	return nil
}
