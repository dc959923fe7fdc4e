package cli

import (
	"encoding/json"

	"github.com/baldurfleet/baldur/internal/buildinfo"
)

func versionCommands() []*command {
	return []*command{{
		noun:     "version",
		summary:  "print the version, commit and Go version of this binary (also: baldur --version)",
		examples: []string{"baldur version", "baldur --version", "baldur version --json"},
		run:      runVersion,
	}}
}

func runVersion(r *runner, _ []string) error {
	if r.json {
		return json.NewEncoder(r.stdout).Encode(buildinfo.Get())
	}
	buildinfo.Print(r.stdout, Name)
	return nil
}
