package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/baldurfleet/baldur/internal/telemetry"
)

// liveSendBuffer is the socket send buffer of a live stream (the kernel
// may double it): a client that does not read holds at most about that much
// of the server's memory, which a container's memory limit counts too.
const liveSendBuffer = 256 << 10

// sse serves GET /api/events: a "snapshot" event with the whole picture,
// then "breaker", "breaker_removed", "governance", "dlq" and "event" events
// as the fleet changes, and a comment every heartbeat while idle. The stream
// ends when the client goes away, when the server stops, and when the
// server drops the client: it fell subscriberBuffer messages behind, or a
// write to it did not complete within Config.LiveWriteTimeout (a client
// that does not read, once its socket's buffers are full). A dropped
// client's connection is reset and its slot freed; its EventSource
// reconnects and gets a fresh snapshot.
func (s *Server) sse(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	snap, sub, ok := s.live.subscribe(s.cfg.MaxLiveClients)
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%d live dashboards are connected already, the most this server serves", s.cfg.MaxLiveClients))
		return
	}
	// Until the stream ends well, closing its connection resets it: the
	// server closes it as soon as a write fails, and what a client that does
	// not read was not sent is then discarded rather than held in the
	// kernel.
	tc := telemetry.TCPConn(r.Context()) // nil when mounted on a server of another kind
	if tc != nil {
		_ = tc.SetWriteBuffer(liveSendBuffer)
		_ = tc.SetLinger(0)
	}
	why := endGone
	defer func() {
		s.live.release(sub, why)
		if why == endGone {
			if tc != nil {
				_ = tc.SetLinger(-1)
			}
		} else {
			// What the server would still write fails at once, and the
			// connection is reset.
			_ = rc.SetWriteDeadline(time.Now())
			reason := "fell behind"
			if why == endStalled {
				reason = "a write stalled"
			}
			s.log.Info("admin: live dashboard dropped", slog.String("remote", r.RemoteAddr), slog.String("reason", reason))
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// The connection carries nothing after the stream: once it ends, for
	// whatever reason, it is closed rather than kept idle.
	h.Set("Connection", "close")

	// Every write gets its own deadline, set before the bytes go out (an
	// event larger than the buffers is written as it is formatted): a
	// client that stops reading is dropped once the socket's buffers are
	// full and the deadline passes.
	bw := bufio.NewWriter(w)
	failed := func(err error) bool {
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			why = endStalled
		}
		return err != nil
	}
	write := func(format string, args ...any) bool {
		if failed(rc.SetWriteDeadline(time.Now().Add(s.cfg.LiveWriteTimeout))) {
			return false
		}
		if _, err := fmt.Fprintf(bw, format, args...); failed(err) {
			return false
		}
		if failed(bw.Flush()) {
			return false
		}
		return !failed(rc.Flush())
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return
	}
	w.WriteHeader(http.StatusOK)
	if !write("retry: 2000\nevent: snapshot\ndata: %s\n\n", data) {
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
				if sub.behind {
					why = endBehind
				}
				return
			}
			if !write("event: %s\ndata: %s\n\n", m.name, m.data) {
				return
			}
		case <-beat.C:
			if !write(": keep-alive\n\n") {
				return
			}
		}
	}
}
