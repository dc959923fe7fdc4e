package store

import (
	"context"
	"fmt"

	"github.com/baldurfleet/baldur/internal/store/dbsqlc"
)

// SetTraceContexts records the W3C trace context (a traceparent) each entry
// was ingested in, keyed by entry id, for entries that have none yet. The
// replay of an entry continues that trace. Unknown ids are ignored.
func (s *Store) SetTraceContexts(ctx context.Context, byID map[string]string) error {
	if len(byID) == 0 {
		return nil
	}
	p := dbsqlc.SetTraceContextsParams{Ids: make([]string, 0, len(byID)), TraceContexts: make([]string, 0, len(byID))}
	for id, tc := range byID {
		if tc == "" {
			continue
		}
		p.Ids = append(p.Ids, id)
		p.TraceContexts = append(p.TraceContexts, tc)
	}
	if err := s.q.SetTraceContexts(ctx, p); err != nil {
		return fmt.Errorf("store: set trace contexts of %d entries: %w", len(p.Ids), err)
	}
	return nil
}

// TraceContexts returns the stored trace context of those of ids that have
// one, keyed by entry id.
func (s *Store) TraceContexts(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.q.TraceContexts(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("store: trace contexts of %d entries: %w", len(ids), err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.TraceContext
	}
	return out, nil
}
