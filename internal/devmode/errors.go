package devmode

import "errors"

var (
	// ErrPortTaken reports a port dev mode should listen on that another
	// process already uses. The wrapping message names the port and the flag
	// that changes it.
	ErrPortTaken = errors.New("port taken")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("invalid dev configuration")
	// ErrStart reports a part of the fleet that did not start; the wrapping
	// message names it.
	ErrStart = errors.New("dev fleet did not start")
)
