package scripts

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is an io.Writer safe to read while written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ctrlC runs `make run` of a Makefile whose recipe is recipe on a terminal
// (script(1) gives it one), types Ctrl-C once the command says it waits,
// and returns make's exit code and the terminal's output.
func ctrlC(t *testing.T, recipe string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	require.NoError(t, err)
	makefile := "run:\n\t" + strings.ReplaceAll(recipe, "FOREGROUND", filepath.Join(wd, "foreground")) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Makefile"), []byte(makefile), 0o644))
	// The command stops cleanly on SIGINT, as baldur dev does. It says it
	// waits once its process group has the terminal (the pgrp and tpgid
	// fields of /proc/PID/stat agree), so that Ctrl-C is typed when a person
	// would type it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fleet"), []byte(`#!/usr/bin/env bash
trap 'echo clean stop; exit 0' INT
while read -r -a st < /proc/$$/stat && [ "${st[4]}" != "${st[7]}" ]; do sleep 0.01; done
echo waiting
while :; do sleep 0.05; done
`), 0o755))

	cmd := exec.Command("script", "-qefc", "make --no-print-directory -C "+dir+" run", "/dev/null")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "waiting") {
		select {
		case err := <-done:
			t.Fatalf("make ended before the command waited: %v\n%s", err, out)
		case <-deadline:
			t.Fatalf("the command never said it waits:\n%s", out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_, err = io.WriteString(stdin, "\x03") // Ctrl-C on the terminal
	require.NoError(t, err)
	select {
	case err = <-done:
	case <-deadline:
		_ = cmd.Process.Kill()
		t.Fatalf("make did not end after Ctrl-C:\n%s", out)
	}
	require.Contains(t, out.String(), "clean stop")
	if err == nil {
		return 0, out.String()
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	return exit.ExitCode(), out.String()
}

// TestCtrlCOnMakeRunExitsZero types Ctrl-C at `make run` on a terminal: with
// the command run by scripts/foreground, only the command gets the signal,
// stops cleanly, and make exits 0. Run directly by make, make itself dies of
// the signal and exits non-zero, which is what foreground is for.
func TestCtrlCOnMakeRunExitsZero(t *testing.T) {
	t.Parallel()
	code, out := ctrlC(t, "@FOREGROUND ./fleet")
	require.Equal(t, 0, code, out)
	require.NotContains(t, out, "make: ***")

	code, out = ctrlC(t, "@./fleet")
	require.NotEqual(t, 0, code, "without foreground make dies of the signal: %s", out)
}

// TestForegroundWithoutTerminal runs the command in place and passes its
// exit status on.
func TestForegroundWithoutTerminal(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("./foreground", "bash", "-c", "echo in place; exit 3").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 3, exit.ExitCode())
	require.Equal(t, "in place\n", string(out))

	out, err = exec.Command("./foreground").CombinedOutput()
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, string(out), "usage: scripts/foreground CMD")
}
