// Package scripts holds the repository's shell scripts and their tests:
// setup, which installs what `make run`, `make test` and CI need on a fresh
// Debian or Ubuntu machine, and foreground, which runs `make run`'s fleet as
// the terminal's foreground job so that Ctrl-C stops it cleanly and make
// exits 0. It has no Go code of its own.
package scripts
