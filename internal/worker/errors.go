package worker

import "errors"

// Sentinel errors of the package.
var (
	// ErrNotOpened reports a role started on Resources that Open did not
	// open for it (Options.Roles lacks the role). The message names the role.
	ErrNotOpened = errors.New("worker: resources not opened for the role")
	// ErrOptions reports invalid Options given to Open. The message names
	// the field.
	ErrOptions = errors.New("worker: invalid options")
)
