package admin

import "errors"

var (
	// ErrConfig reports an invalid Config or missing Deps.
	ErrConfig = errors.New("admin: invalid configuration")
	// ErrListen reports that the server could not listen on its address
	// (typically: the port is taken).
	ErrListen = errors.New("admin: cannot listen")
	// ErrStarted reports a second Start.
	ErrStarted = errors.New("admin: server already started")
)
