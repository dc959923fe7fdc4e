package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/process"
)

func configCommands() []*command {
	return []*command{
		{
			noun: "config", verb: "get", args: []string{"KEY"}, needs: needNATS,
			summary:  "show a key of baldur_config (a service, _defaults, _sla or _cells) and its effective setting",
			examples: []string{"baldur config get payments", "baldur config get _defaults --json"},
			run:      runConfigGet,
		},
		{
			noun: "config", verb: "set", args: []string{"KEY", "JSON?"}, needs: needNATS,
			summary: "validate a value exactly as the fleet reads it, then write it by compare-and-set",
			examples: []string{`baldur config set payments '{"failure_threshold": 8, "recovery_timeout": "45s"}'`,
				`baldur config set _sla '{"default_hours": 48}'`, "baldur config set _defaults --file defaults.json"},
			flags: func(f *process.Flags) func() any {
				p := f.FlagSet().String("file", "", "read the JSON value from this file")
				return func() any { return p }
			},
			run: runConfigSet,
		},
		{
			noun: "config", verb: "list", needs: needNATS,
			summary:  "list the keys set in baldur_config (fleet settings first, then services) with their revisions",
			examples: []string{"baldur config list", "baldur config list --json"},
			run:      runConfigList,
		},
		{
			noun: "config", verb: "delete", args: []string{"KEY"}, needs: needNATS,
			summary:  "delete a key by compare-and-set: the service falls back to _defaults; a fleet setting needs --force",
			examples: []string{"baldur config delete payments", "baldur config delete _sla --force"},
			flags: func(f *process.Flags) func() any {
				p := f.FlagSet().Bool("force", false, "delete a fleet setting (_defaults, _sla, _cells), which changes every service's")
				return func() any { return p }
			},
			run: runConfigDelete,
		},
	}
}

func runConfigList(r *runner, _ []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	keys, err := r.client.ConfigList(ctx)
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, keys)
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tKIND\tREVISION\tUPDATED")
	for _, k := range keys {
		kind := "service"
		if k.Fleet {
			kind = "fleet"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", k.Key, kind, k.Revision, k.Updated.Format(time.RFC3339))
	}
	return tw.Flush()
}

func runConfigDelete(r *runner, args []string) error {
	force := *r.extra.(*bool)
	ctx, cancel := r.opCtx()
	defer cancel()
	old, err := r.client.ConfigDelete(ctx, args[0], force)
	if errors.Is(err, opsclient.ErrInvalid) && strings.HasPrefix(args[0], "_") && !force {
		return usagef("config delete: %s is a fleet setting: deleting it changes every service's; give --force to delete it", args[0])
	}
	if err != nil {
		return fmt.Errorf("nothing deleted: %w", err)
	}
	now, err := r.client.ConfigGet(ctx, args[0])
	if err != nil {
		return err
	}
	if r.json {
		return printJSON(r.stdout, map[string]any{"deleted": old, "now": now})
	}
	fmt.Fprintf(r.stdout, "deleted: %s (was revision %d)\nwas:\n  %s\neffective now:\n", old.Key, old.Revision, string(old.Value))
	return printJSON(r.stdout, now.Effective)
}

// configValue returns the value to write to key: raw itself, or, when raw
// is what `config get --json` printed (an object with "key" and "value"),
// its value, after checking that it is the export of key and holds one.
func configValue(key string, raw []byte) ([]byte, error) {
	var export map[string]json.RawMessage
	if json.Unmarshal(raw, &export) != nil {
		return raw, nil // not an object: ConfigSet says why
	}
	k, hasKey := export["key"]
	v, hasValue := export["value"]
	if !hasKey || !hasValue {
		return raw, nil
	}
	var name string
	if err := json.Unmarshal(k, &name); err != nil {
		return nil, usagef("config set: the export's key is not a string")
	}
	if name != key {
		return nil, usagef("config set: the value is the export of %q, not of %q", name, key)
	}
	if string(bytes.TrimSpace(v)) == "null" {
		return nil, usagef("config set: the export of %s holds no value (the key was not set); 'baldur config delete %s' removes a value", key, key)
	}
	return v, nil
}

func runConfigGet(r *runner, args []string) error {
	ctx, cancel := r.opCtx()
	defer cancel()
	e, err := r.client.ConfigGet(ctx, args[0])
	if err != nil {
		return err
	}
	return printConfig(r, e, "")
}

func printConfig(r *runner, e opsclient.ConfigEntry, verb string) error {
	if r.json {
		return printJSON(r.stdout, e)
	}
	if verb != "" {
		fmt.Fprintf(r.stdout, "%s: %s (revision %d)\n", verb, e.Key, e.Revision)
	}
	fmt.Fprintf(r.stdout, "stored (revision %d):\n  %s\neffective:\n", e.Revision, string(e.Value))
	return printJSON(r.stdout, e.Effective)
}

func runConfigSet(r *runner, args []string) error {
	file := *r.extra.(*string)
	var value []byte
	switch {
	case len(args) == 2 && file != "":
		return usagef("config set: give the value or --file, not both")
	case len(args) == 2:
		value = []byte(args[1])
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return usagef("config set: --file: %v", err)
		}
		value = b
	default:
		return usagef("config set: missing argument JSON (or --file)")
	}
	value, err := configValue(args[0], value)
	if err != nil {
		return err
	}
	ctx, cancel := r.opCtx()
	defer cancel()
	e, err := r.client.ConfigSet(ctx, args[0], value)
	if err != nil {
		return fmt.Errorf("refused, nothing written: %w", err)
	}
	return printConfig(r, e, "written")
}
