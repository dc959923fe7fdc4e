package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// sse serves GET /api/events: a "snapshot" event with the whole picture,
// then "breaker", "breaker_removed", "governance", "dlq" and "event" events
// as the fleet changes, and a comment every heartbeat while idle. The stream
// ends when the client goes away, when it falls too far behind (its
// EventSource reconnects and gets a fresh snapshot) or when the server
// stops.
func (s *Server) sse(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	snap, sub, ok := s.live.subscribe(s.cfg.MaxLiveClients)
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%d live dashboards are connected already, the most this server serves", s.cfg.MaxLiveClients))
		return
	}
	defer s.live.unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// Every write gets its own deadline: a client that stops reading is
	// dropped once the socket's buffers are full and the deadline passes.
	deadline := func() error { return rc.SetWriteDeadline(time.Now().Add(s.cfg.LiveWriteTimeout)) }
	if deadline() != nil {
		return
	}
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriter(w)
	flush := func() error {
		if err := deadline(); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func(name string, data []byte) error {
		if _, err := fmt.Fprintf(bw, "event: %s\ndata: %s\n\n", name, data); err != nil {
			return err
		}
		return flush()
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return
	}
	if _, err := fmt.Fprint(bw, "retry: 2000\n"); err != nil {
		return
	}
	if send("snapshot", data) != nil {
		return
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-sub.ch:
			if !ok {
				return
			}
			if send(m.name, m.data) != nil {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(bw, ": keep-alive\n\n"); err != nil {
				return
			}
			if flush() != nil {
				return
			}
		}
	}
}
