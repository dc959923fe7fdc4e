package opsclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/store"
	"github.com/baldurfleet/baldur/internal/topology"
)

// DefaultApplyTimeout is how long a command waits for a worker to apply it
// when neither WithApplyTimeout nor the context's deadline says otherwise.
const DefaultApplyTimeout = 5 * time.Second

// AuditStore is what the client needs of the store for the audit log
// (*store.Store).
type AuditStore interface {
	ListAudit(ctx context.Context, subject string, afterSeq int64, limit int) ([]domain.AuditRecord, error)
	VerifyAuditChain(ctx context.Context, anchors *domain.AuditAnchors) (store.AuditReport, error)
}

// Client is an operator's client of one fleet. It is safe for concurrent use.
type Client struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	breakers   jetstream.KeyValue
	config     jetstream.KeyValue
	governance jetstream.KeyValue

	source       string
	now          func() time.Time
	applyTimeout time.Duration
	audit        AuditStore
}

// Option configures a Client.
type Option func(*Client)

// WithSource sets the ce-source of the commands the client publishes
// (default "baldur-cli@<hostname>").
func WithSource(s string) Option { return func(c *Client) { c.source = s } }

// WithClock sets the clock of ce-time (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithApplyTimeout bounds how long a command waits for a worker to apply it
// (default DefaultApplyTimeout); a shorter context deadline wins.
func WithApplyTimeout(d time.Duration) Option { return func(c *Client) { c.applyTimeout = d } }

// WithAuditStore gives the client the store of the audit log; without it
// AuditList and AuditVerify fail with ErrNoDatabase.
func WithAuditStore(s AuditStore) Option { return func(c *Client) { c.audit = s } }

// DefaultSource returns "baldur-cli@<hostname>".
func DefaultSource() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return "baldur-cli@" + host
}

// New returns a client of the fleet on nc. It binds the KV buckets
// baldur_breakers, baldur_config and baldur_governance, which the fleet's
// workers create; when they do not exist (no worker ever ran) or JetStream
// does not answer, the error wraps ErrUnreachable. New creates nothing.
func New(ctx context.Context, nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrInvalid)
	}
	c := &Client{nc: nc, now: time.Now, applyTimeout: DefaultApplyTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.source == "" {
		c.source = DefaultSource()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: JetStream: %v", ErrUnreachable, err)
	}
	c.js = js
	for _, b := range []struct {
		name string
		dst  *jetstream.KeyValue
	}{
		{topology.BucketBreakers, &c.breakers},
		{topology.BucketConfig, &c.config},
		{topology.BucketGovernance, &c.governance},
	} {
		kv, err := js.KeyValue(ctx, b.name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("%w: KV bucket %s does not exist; start a breaker-worker, which creates the topology", ErrUnreachable, b.name)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: KV bucket %s: %v", ErrUnreachable, b.name, err)
		}
		*b.dst = kv
	}
	return c, nil
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// JetStream returns the client's JetStream context.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Source returns the ce-source of the commands the client publishes.
func (c *Client) Source() string { return c.source }

// CommandGrace is how long past a command's valid_until the client still
// waits for its outcome: a worker applies it at the latest at valid_until
// by its own clock, so the grace covers the publish and clocks that differ
// by less than it.
const CommandGrace = time.Second

// waitFor is how long a command is waited for: the apply timeout, or what
// is left of ctx less CommandGrace when that is shorter.
func (c *Client) waitFor(ctx context.Context) time.Duration {
	d := c.applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - CommandGrace; left < d {
			d = max(left, 0)
		}
	}
	return d
}

// commandTimer stamps a command's valid_until (when the caller set none) at
// the end of the wait and returns the timer of the wait, CommandGrace
// longer: once it fires no worker can apply the command any more, so "not
// applied" is final.
func (c *Client) commandTimer(ctx context.Context, validUntil *time.Time) (*time.Timer, time.Duration) {
	d := c.waitFor(ctx)
	if validUntil.IsZero() {
		*validUntil = c.now().UTC().Add(d)
	} else {
		d = max(time.Until(*validUntil), 0)
	}
	return time.NewTimer(d + CommandGrace), d
}

// natsErr wraps an error of a NATS or JetStream call: a context error stays
// what it is, anything else is ErrUnreachable.
func natsErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnreachable, what, err)
}
