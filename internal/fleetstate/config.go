package fleetstate

import (
	"fmt"
	"maps"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/topology"
)

// configState is the view's copy of baldur_config. Readers load two atomic
// pointers; only the config goroutine writes.
type configState struct {
	// defaults is the resolution of built-in defaults + "_defaults".
	defaults atomic.Pointer[domain.Config]
	// services holds the resolution of every service with its own object
	// (copy on write: config keys are few and change rarely).
	services atomic.Pointer[map[string]*domain.Config]

	// Owned by the config goroutine.
	defaultsRaw []byte            // the last valid "_defaults" object
	raw         map[string][]byte // every service's object as read
}

func newConfigState() *configState {
	c := &configState{raw: map[string][]byte{}}
	d := domain.DefaultConfig()
	c.defaults.Store(&d)
	c.services.Store(&map[string]*domain.Config{})
	return c
}

func (c *configState) get(svc string) domain.Config {
	if r, ok := (*c.services.Load())[svc]; ok {
		return *r
	}
	return *c.defaults.Load()
}

// applyConfig applies one entry of baldur_config. An object that does not
// resolve to a valid config is reported and ignored: the last valid
// resolution stays, or, for a service that never had one, "_defaults".
func (v *View) applyConfig(e jetstream.KeyValueEntry) {
	c := v.cfg
	key := e.Key()
	deleted := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	if key == domain.ConfigDefaultsKey {
		d, raw := domain.DefaultConfig(), []byte(nil)
		if !deleted {
			var err error
			if d, err = domain.ResolveConfig(e.Value(), nil); err != nil {
				v.reject(events.RejectedConfig, topology.BucketConfig, key, e.Value(), err)
				return
			}
			raw = e.Value()
		}
		c.defaultsRaw = raw
		c.defaults.Store(&d)
		// Every service's object is layered again on the new defaults.
		next := maps.Clone(*c.services.Load())
		for svc, raw := range c.raw {
			v.resolveService(next, svc, raw)
		}
		c.services.Store(&next)
		return
	}
	if strings.HasPrefix(key, "_") {
		// Other fleet-wide settings ("_sla", "_cells") belong to the
		// watchdog, which reads and validates them itself.
		return
	}
	if err := events.ValidateServiceName(key); err != nil {
		if !deleted {
			v.reject(events.RejectedConfig, topology.BucketConfig, key, e.Value(),
				fmt.Errorf("%w: %q is neither %q nor a service name: %w", ErrBadConfigKey, key, domain.ConfigDefaultsKey, err))
		}
		return
	}
	next := maps.Clone(*c.services.Load())
	if deleted {
		delete(c.raw, key)
		delete(next, key)
	} else {
		c.raw[key] = e.Value()
		v.resolveService(next, key, e.Value())
	}
	c.services.Store(&next)
}

// resolveService resolves svc's object raw over the last valid defaults into
// m, keeping m's previous value when the result is invalid.
func (v *View) resolveService(m map[string]*domain.Config, svc string, raw []byte) {
	r, err := domain.ResolveConfig(v.cfg.defaultsRaw, raw)
	if err != nil {
		v.reject(events.RejectedConfig, topology.BucketConfig, svc, raw, err)
		return
	}
	m[svc] = &r
}
