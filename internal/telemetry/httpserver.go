package telemetry

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of every HTTP server a Baldur process runs (health endpoints, the
// admin API and dashboard): a client that sends slowly, stalls, never reads
// or opens connection after connection ties up a bounded amount of the
// server for a bounded time.
const (
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout the
	// whole request.
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	// WriteTimeout bounds writing an answer; a stream (server-sent events)
	// extends its own deadline write by write.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection without a request.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
	// MaxConnections bounds the connections served at once; more wait to be
	// accepted.
	MaxConnections = 256
)

// NewHTTPServer returns an http.Server for h with the limits above; errors
// of the server go to log at warning level.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

type connKey struct{}

// TCPConn returns the TCP connection the request of ctx arrived on, when a
// server made by NewHTTPServer serves it, else nil. A handler that streams
// (server-sent events) uses it to bound the socket's send buffer and to
// reset a connection it drops; it must not read or write it.
func TCPConn(ctx context.Context) *net.TCPConn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	for c != nil {
		switch cc := c.(type) {
		case *net.TCPConn:
			return cc
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// LimitListener returns ln accepting at most n connections at once: Accept
// waits while n are open.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// NetConn returns the connection c wraps.
func (c *limitConn) NetConn() net.Conn { return c.Conn }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
