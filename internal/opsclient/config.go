package opsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// ConfigEntry is a key of baldur_config: the stored value and what the fleet
// makes of it.
type ConfigEntry struct {
	// Key is "_defaults", "_sla", "_cells" or a service name.
	Key string `json:"key"`
	// Value is the stored JSON; null when the key is not set.
	Value json.RawMessage `json:"value"`
	// Revision is the KV revision of Value; 0 when the key is not set.
	Revision uint64 `json:"revision"`
	// Effective is the resolved setting: the service's domain.Config
	// (built-in defaults, then _defaults, then the service's value) for a
	// service or _defaults, domain.SLASettings for _sla, domain.CellsConfig
	// for _cells.
	Effective any `json:"effective"`
}

// validateConfigKey checks key: a fleet setting or a service name.
func validateConfigKey(key string) error {
	switch key {
	case domain.ConfigDefaultsKey, domain.SLAConfigKey, domain.ConfigCellsKey:
		return nil
	}
	if strings.HasPrefix(key, "_") {
		return fmt.Errorf("%w: config key %q: fleet settings are %s, %s and %s", ErrInvalid, key,
			domain.ConfigDefaultsKey, domain.SLAConfigKey, domain.ConfigCellsKey)
	}
	if err := events.ValidateServiceName(key); err != nil {
		return fmt.Errorf("%w: config key %q: %w", ErrInvalid, key, err)
	}
	return nil
}

// resolve returns the effective setting of key with value, given the
// stored _defaults, or the validation error.
func resolve(key string, value, defaults []byte) (any, error) {
	switch key {
	case domain.SLAConfigKey:
		if len(bytes.TrimSpace(value)) == 0 {
			return domain.DefaultSLASettings(), nil
		}
		return domain.ParseSLASettings(value)
	case domain.ConfigCellsKey:
		if len(bytes.TrimSpace(value)) == 0 {
			return domain.CellsConfig{}, nil
		}
		return domain.ParseCellsConfig(value)
	case domain.ConfigDefaultsKey:
		return domain.ResolveConfig(value, nil)
	}
	return domain.ResolveConfig(defaults, value)
}

func (c *Client) getConfig(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := c.config.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, natsErr("read config key "+key, err)
	}
	return e.Value(), e.Revision(), nil
}

// ConfigGet reads key of baldur_config and resolves it. A key that is not
// set is not an error: Value is null and Effective the defaults. A stored
// value the fleet cannot read is ErrCorrupt.
func (c *Client) ConfigGet(ctx context.Context, key string) (ConfigEntry, error) {
	if err := validateConfigKey(key); err != nil {
		return ConfigEntry{}, err
	}
	value, rev, err := c.getConfig(ctx, key)
	if err != nil {
		return ConfigEntry{}, err
	}
	var defaults []byte
	if key != domain.ConfigDefaultsKey {
		if defaults, _, err = c.getConfig(ctx, domain.ConfigDefaultsKey); err != nil {
			return ConfigEntry{}, err
		}
	}
	eff, err := resolve(key, value, defaults)
	if err != nil {
		return ConfigEntry{}, fmt.Errorf("%w: config key %s: %w", ErrCorrupt, key, err)
	}
	return ConfigEntry{Key: key, Value: rawOrNull(value), Revision: rev, Effective: eff}, nil
}

// ConfigSet validates value for key exactly as the fleet will read it
// (domain.ResolveConfig over the stored _defaults for a service,
// domain.ParseSLASettings for _sla, domain.ParseCellsConfig for _cells) and
// writes it by compare-and-set on the revision it read. An invalid value is
// ErrInvalid and nothing is written; a concurrent write is ErrConflict.
func (c *Client) ConfigSet(ctx context.Context, key string, value []byte) (ConfigEntry, error) {
	if err := validateConfigKey(key); err != nil {
		return ConfigEntry{}, err
	}
	value = bytes.TrimSpace(value)
	if !json.Valid(value) {
		return ConfigEntry{}, fmt.Errorf("%w: config %s: the value is not valid JSON", ErrInvalid, key)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, value); err != nil {
		return ConfigEntry{}, fmt.Errorf("%w: config %s: %v", ErrInvalid, key, err)
	}
	value = compact.Bytes()
	if value[0] != '{' {
		return ConfigEntry{}, fmt.Errorf("%w: config %s: the value must be a JSON object", ErrInvalid, key)
	}
	var defaults []byte
	var err error
	if key != domain.ConfigDefaultsKey {
		if defaults, _, err = c.getConfig(ctx, domain.ConfigDefaultsKey); err != nil {
			return ConfigEntry{}, err
		}
	}
	eff, err := resolve(key, value, defaults)
	if err != nil {
		return ConfigEntry{}, fmt.Errorf("%w: config %s: %w", ErrInvalid, key, err)
	}
	_, rev, err := c.getConfig(ctx, key)
	if err != nil {
		return ConfigEntry{}, err
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = c.config.Create(ctx, key, value)
	} else {
		newRev, err = c.config.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return ConfigEntry{}, fmt.Errorf("%w: config %s changed while it was being written; read it again", ErrConflict, key)
	}
	if err != nil {
		return ConfigEntry{}, natsErr("write config key "+key, err)
	}
	return ConfigEntry{Key: key, Value: value, Revision: newRev, Effective: eff}, nil
}

// ConfigKey is one key of baldur_config as ConfigList lists it.
type ConfigKey struct {
	// Key is "_defaults", "_sla", "_cells" or a service name.
	Key string `json:"key"`
	// Fleet reports a fleet setting (_defaults, _sla, _cells) rather than
	// a service.
	Fleet bool `json:"fleet"`
	// Revision is the KV revision of the stored value.
	Revision uint64 `json:"revision"`
	// Updated is when that revision was written.
	Updated time.Time `json:"updated"`
}

// ConfigList returns every key set in baldur_config, the fleet settings
// first, then the services by name. Deleted keys are not listed.
func (c *Client) ConfigList(ctx context.Context) ([]ConfigKey, error) {
	lister, err := c.config.ListKeys(ctx)
	if err != nil {
		return nil, natsErr("list config keys", err)
	}
	var names []string
	// The channel closes once every key was sent (the lister then stops
	// its watcher itself), or early when ctx ends.
	for k := range lister.Keys() {
		names = append(names, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, natsErr("list config keys", err)
	}
	out := make([]ConfigKey, 0, len(names))
	for _, k := range names {
		e, err := c.config.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, natsErr("read config key "+k, err)
		}
		out = append(out, ConfigKey{Key: k, Fleet: strings.HasPrefix(k, "_"), Revision: e.Revision(), Updated: e.Created().UTC()})
	}
	slices.SortFunc(out, func(a, b ConfigKey) int {
		if a.Fleet != b.Fleet {
			if a.Fleet {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// ConfigDelete deletes key of baldur_config by compare-and-set on the
// revision it read, and returns what was stored (the fleet falls back to
// the defaults: the built-in ones, then _defaults for a service). A key that
// is not set is ErrNotFound; a concurrent write is ErrConflict. Deleting a
// fleet setting (_defaults, _sla, _cells) changes every service's, so it
// needs force; without it the call is ErrInvalid and nothing is deleted.
func (c *Client) ConfigDelete(ctx context.Context, key string, force bool) (ConfigEntry, error) {
	if err := validateConfigKey(key); err != nil {
		return ConfigEntry{}, err
	}
	if strings.HasPrefix(key, "_") && !force {
		return ConfigEntry{}, fmt.Errorf("%w: config %s is a fleet setting: deleting it changes every service's; force it to delete", ErrInvalid, key)
	}
	value, rev, err := c.getConfig(ctx, key)
	if err != nil {
		return ConfigEntry{}, err
	}
	if rev == 0 {
		return ConfigEntry{}, fmt.Errorf("%w: config key %s is not set", ErrNotFound, key)
	}
	err = c.config.Delete(ctx, key, jetstream.LastRevision(rev))
	if isWrongSequence(err) {
		return ConfigEntry{}, fmt.Errorf("%w: config %s changed while it was being deleted; read it again", ErrConflict, key)
	}
	if err != nil {
		return ConfigEntry{}, natsErr("delete config key "+key, err)
	}
	return ConfigEntry{Key: key, Value: rawOrNull(value), Revision: rev}, nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(b)
}
