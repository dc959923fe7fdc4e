package domain

import (
	"cmp"
	"fmt"
	"slices"
)

// Valid reports whether p is critical, normal or low.
func (p Priority) Valid() bool { return slices.Contains(Priorities, p) }

// ParsePriority reads a priority from the wire. An empty string is
// PriorityNormal; any other value but critical, normal and low is an error
// wrapping ErrInvalidPriority.
func ParsePriority(s string) (Priority, error) {
	if s == "" {
		return PriorityNormal, nil
	}
	p := Priority(s)
	if !p.Valid() {
		return "", fmt.Errorf("%w %q: want critical, normal or low", ErrInvalidPriority, s)
	}
	return p, nil
}

// Priority ranks: replay takes lower ranks first.
const (
	RankCritical     = 0
	RankNormal       = 1
	RankLow          = 2
	RankUnconfigured = 3
)

// Rank is p's place in replay order (seed): critical 0, normal 1, low 2, and 3
// for anything else (an unconfigured priority, replayed last). It is the Go
// twin of PriorityRankSQL.
func (p Priority) Rank() int {
	switch p {
	case PriorityCritical:
		return RankCritical
	case PriorityNormal:
		return RankNormal
	case PriorityLow:
		return RankLow
	}
	return RankUnconfigured
}

// PriorityRankSQL is the SQL twin of Priority.Rank over a column named
// priority. The store orders a service's backlog with
//
//	ORDER BY CASE priority WHEN 'critical' THEN 0 WHEN 'normal' THEN 1
//	         WHEN 'low' THEN 2 ELSE 3 END, created_at, id
//
// which is the order CompareDLQEntries gives in Go, provided id compares
// byte-wise in SQL too (a uuid column, or text with COLLATE "C"). A NULL
// priority falls to ELSE, like an unconfigured one. The dlq_entries table
// stores this rank as the generated column priority_rank (its CHECK constraint
// admits only the three priorities, so its ELSE branch is low's 2).
const PriorityRankSQL = `CASE priority WHEN 'critical' THEN 0 WHEN 'normal' THEN 1 WHEN 'low' THEN 2 ELSE 3 END`

// CompareDLQEntries orders entries for replay: by priority rank, then oldest
// created_at first, then by id, so the order is total and matches the store's
// ORDER BY (see PriorityRankSQL). Use it with slices.SortFunc.
func CompareDLQEntries(a, b DLQEntry) int {
	return cmp.Or(
		cmp.Compare(a.Priority.Rank(), b.Priority.Rank()),
		a.CreatedAt.Compare(b.CreatedAt),
		cmp.Compare(a.ID, b.ID),
	)
}
