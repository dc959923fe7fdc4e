package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
)

// Staleness says since when the admin's picture of the fleet has not been
// kept up to date, and why; it is in the snapshot and in the "stale" live
// event while the connection to NATS is down or the feeds are being loaded
// again.
type Staleness struct {
	// Since is when the picture went stale.
	Since time.Time `json:"since"`
	// Reason says why ("NATS disconnected: …", "reloading after a reconnect").
	Reason string `json:"reason"`
}

// resyncBackoff bounds the wait between two attempts to load the feeds
// again after a reconnect (they fail while the fleet's topology is missing).
const (
	resyncFirstWait = 200 * time.Millisecond
	resyncMaxWait   = 5 * time.Second
)

// superviseConn follows the NATS connection the feeds read through: on a
// disconnect the picture is marked stale (the dashboards say so, /readyz
// answers 503); on a reconnect the feeds are loaded again from scratch —
// the server may have restarted with other data, which a resumed watch
// would never see — and the live dashboards are ended so that they fetch
// the fresh snapshot. The connection's own handlers are kept and called
// first.
func (s *Server) superviseConn(nc *nats.Conn) {
	if nc == nil {
		return
	}
	prevDisc, prevRecon, prevClosed := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB, nc.Opts.ClosedCB
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if prevDisc != nil {
			prevDisc(c, err)
		}
		reason := "NATS disconnected"
		if err != nil {
			reason += ": " + err.Error()
		}
		s.log.Warn("admin: NATS disconnected; the dashboards show a stale picture until it reconnects", slog.Any("error", err))
		s.live.markStale(s.cfg.Clock(), reason)
	})
	nc.SetClosedHandler(func(c *nats.Conn) {
		if prevClosed != nil {
			prevClosed(c)
		}
		s.live.markStale(s.cfg.Clock(), "NATS connection closed")
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if prevRecon != nil {
			prevRecon(c)
		}
		s.log.Info("admin: NATS reconnected; loading the fleet's state again", slog.String("url", c.ConnectedUrlRedacted()))
		select {
		case s.reconnected <- struct{}{}:
		default: // a resync is already due
		}
	})
}

// resyncLoop loads the feeds again after each reconnect until life ends.
func (s *Server) resyncLoop(life context.Context) {
	for {
		select {
		case <-life.Done():
			return
		case <-s.reconnected:
		}
		wait := resyncFirstWait
		for {
			s.live.markStale(s.cfg.Clock(), "reloading the fleet's state after a reconnect")
			err := s.restartFeeds(life)
			if err == nil {
				s.live.markFresh()
				s.log.Info("admin: the fleet's state is loaded again")
				break
			}
			if errors.Is(err, errStopped) || life.Err() != nil {
				return
			}
			s.log.Warn("admin: loading the fleet's state failed; trying again", slog.Duration("in", wait), slog.Any("error", err))
			select {
			case <-life.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, resyncMaxWait)
		}
	}
}

// errStopped reports a resync of a server that was stopped meanwhile.
var errStopped = errors.New("admin: stopped")

// restartFeeds stops the feeds, forgets what they loaded and starts them
// again.
func (s *Server) restartFeeds(life context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return errStopped
	}
	s.stopFeedsLocked()
	s.live.forget()
	ctx, cancel := context.WithTimeout(life, s.cfg.RequestTimeout)
	defer cancel()
	return s.startFeedsLocked(ctx)
}

// readyz answers 200 when the admin is connected to NATS and its picture of
// the fleet is up to date, 503 with the reason otherwise: the readiness
// probe. /api/health stays the liveness probe (the process answers).
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if st := s.live.staleness(); st != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "stale": st})
		return
	}
	if nc := s.deps.JetStream.Conn(); nc == nil || !nc.IsConnected() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "NATS not connected"})
		return
	}
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": "the live feeds are not started"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}
