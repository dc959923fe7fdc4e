package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baldurfleet/baldur/internal/domain"
)

// printJSON writes v as indented JSON with a trailing newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// since formats the age of at, rounded; "-" for the zero time.
func since(now, at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return age(now.Sub(at))
}

func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func percent(p float64) string { return strconv.FormatFloat(p, 'f', 1, 64) + "%" }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// breakerDetail writes one breaker as aligned key/value lines.
func breakerDetail(w io.Writer, b domain.Breaker, now time.Time) error {
	t := newTable(w)
	t.row("service", b.Service)
	t.row("state", string(b.State))
	mode := string(b.Mode)
	if m := b.Manual; m != nil {
		mode += fmt.Sprintf(" (by %s: %s", m.Actor, m.Reason)
		if !m.ExpiresAt.IsZero() {
			mode += ", until " + stamp(m.ExpiresAt)
		}
		mode += ")"
	}
	t.row("mode", mode)
	t.row("generation", strconv.FormatUint(b.Generation, 10))
	in := "-"
	if lt := b.LastTransition; lt != nil {
		in = since(now, lt.At) + " (" + string(lt.From) + " → " + string(lt.To) + ", " + string(lt.Trigger) + ")"
	}
	t.row("in state", in)
	t.row("window", fmt.Sprintf("%d calls, %d failures (%s), %d slow", b.Window.Calls(), b.Window.Failures,
		percent(b.Window.FailureRate), b.Window.SlowCalls))
	t.row("consecutive failures", strconv.FormatInt(b.ConsecutiveFailures, 10))
	if b.State == domain.StateOpen {
		t.row("opened at", stamp(b.OpenedAt))
		t.row("recovery at", stamp(b.RecoveryAt))
	}
	if b.State == domain.StateHalfOpen {
		t.row("half-open", fmt.Sprintf("%d of %d permits issued, %d successes", b.HalfOpen.Issued, b.HalfOpen.Permits, b.HalfOpen.Successes))
	}
	if o := b.Override; o != nil {
		t.row("override", overrideText(o.ThresholdOverride)+fmt.Sprintf(" by %s until %s (renewed %d×)", o.Actor, stamp(o.ExpiresAt), o.Renewals))
	}
	t.row("last command", orDash(b.LastCommandID))
	return t.flush()
}

func overrideText(o domain.ThresholdOverride) string {
	var parts []string
	if o.FailureThreshold != nil {
		parts = append(parts, "failure_threshold="+strconv.Itoa(*o.FailureThreshold))
	}
	if o.FailureRateThreshold != nil {
		parts = append(parts, "failure_rate_threshold="+strconv.FormatFloat(*o.FailureRateThreshold, 'f', -1, 64))
	}
	if o.MinimumCalls != nil {
		parts = append(parts, "minimum_calls="+strconv.Itoa(*o.MinimumCalls))
	}
	if o.SlowCallRateThreshold != nil {
		parts = append(parts, "slow_call_rate_threshold="+strconv.FormatFloat(*o.SlowCallRateThreshold, 'f', -1, 64))
	}
	if o.RecoveryTimeout != nil {
		parts = append(parts, "recovery_timeout="+o.RecoveryTimeout.String())
	}
	return strings.Join(parts, " ")
}

// jsonLine writes v as compact JSON on one line.
func jsonLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
