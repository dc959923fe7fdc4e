package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/process"
	"github.com/baldurfleet/baldur/internal/testenv"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parse(t *testing.T, args []string, e map[string]string) (process.Config, error) {
	t.Helper()
	f := process.NewFlags("test")
	f.FlagSet().SetOutput(io.Discard)
	return f.Parse(args, env(e))
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parse(t, nil, nil)
	require.NoError(t, err)
	require.Equal(t, process.DefaultNATSURL, cfg.NATSURL)
	require.Equal(t, 1, cfg.Replicas)
	require.Equal(t, slog.LevelInfo, cfg.LogLevel)
	require.Equal(t, "text", cfg.LogFormat)
	require.NotEmpty(t, cfg.NodeID, "default node id is hostname-pid")
	require.NoError(t, cfg.Validate())
}

func TestParsePrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(t *testing.T, c process.Config)
	}{
		{"env over default", nil, map[string]string{process.EnvNATSURL: "nats://a:1", process.EnvReplicas: "3", process.EnvNodeID: "w1"},
			func(t *testing.T, c process.Config) {
				require.Equal(t, "nats://a:1", c.NATSURL)
				require.Equal(t, 3, c.Replicas)
				require.Equal(t, "w1", c.NodeID)
			}},
		{"flag over env", []string{"--nats-url", "nats://b:2", "--replicas=1", "--log-level", "debug"},
			map[string]string{process.EnvNATSURL: "nats://a:1", process.EnvReplicas: "3", process.EnvLogLevel: "error"},
			func(t *testing.T, c process.Config) {
				require.Equal(t, "nats://b:2", c.NATSURL)
				require.Equal(t, 1, c.Replicas)
				require.Equal(t, slog.LevelDebug, c.LogLevel)
			}},
		{"empty env is unset", nil, map[string]string{process.EnvNATSURL: ""},
			func(t *testing.T, c process.Config) { require.Equal(t, process.DefaultNATSURL, c.NATSURL) }},
		{"all shared flags", []string{"--database-url", "postgres://x", "--http-addr", ":8080", "--log-format", "json"}, nil,
			func(t *testing.T, c process.Config) {
				require.Equal(t, "postgres://x", c.DatabaseURL)
				require.Equal(t, ":8080", c.HTTPAddr)
				require.Equal(t, "json", c.LogFormat)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parse(t, tt.args, tt.env)
			require.NoError(t, err)
			tt.want(t, cfg)
		})
	}
}

func TestBinaryFlagsWithTwins(t *testing.T) {
	t.Parallel()
	f := process.NewFlags("test")
	parts := f.Int("partitions", "BALDUR_PARTITIONS", 16, "partitions")
	ttl := f.Duration("lease-ttl", "BALDUR_LEASE_TTL", 5*time.Second, "lease TTL")
	name := f.String("name", "", "x", "no twin")
	_, err := f.Parse([]string{"--lease-ttl", "2s"}, env(map[string]string{"BALDUR_PARTITIONS": "8", "BALDUR_LEASE_TTL": "9s"}))
	require.NoError(t, err)
	require.Equal(t, 8, *parts)
	require.Equal(t, 2*time.Second, *ttl)
	require.Equal(t, "x", *name)
}

func TestParseErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env int", nil, map[string]string{process.EnvReplicas: "three"}, "$BALDUR_REPLICAS=\"three\" for --replicas"},
		{"replicas range", []string{"--replicas", "7"}, nil, "--replicas ($BALDUR_REPLICAS) is 7"},
		{"scheme", []string{"--nats-url", "http://x:4222"}, nil, "has scheme \"http\""},
		{"no host", []string{"--nats-url", "nats://:4222"}, nil, "has no host"},
		{"node id", []string{"--node-id", "a.b"}, nil, "--node-id ($BALDUR_NODE_ID) \"a.b\""},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format ($BALDUR_LOG_FORMAT) is \"xml\""},
		{"log level", []string{"--log-level", "loud"}, nil, "--log-level ($BALDUR_LOG_LEVEL) is \"loud\""},
		{"creds missing", []string{"--nats-creds", "/nonexistent/x.creds"}, nil, "--nats-creds"},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument \"extra\""},
		{"two problems", []string{"--replicas", "0", "--log-format", "xml"}, nil, "; --log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.args, tt.env)
			require.ErrorIs(t, err, process.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestParseHelp(t *testing.T) {
	t.Parallel()
	_, err := parse(t, []string{"-h"}, nil)
	require.ErrorIs(t, err, flag.ErrHelp)
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	cfg := process.Config{NodeID: "n1", LogFormat: "json", LogLevel: slog.LevelWarn}
	log := cfg.Logger(&buf)
	log.Info("hidden")
	log.Warn("shown", slog.Int("k", 1))
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec))
	require.Equal(t, "shown", rec["msg"])
	require.Equal(t, "n1", rec["node"])
}

func TestConnect(t *testing.T) {
	t.Parallel()
	srv := testenv.NATS(t)
	cfg := process.Config{NATSURL: srv.URL, NodeID: "n1"}
	nc, err := cfg.Connect(context.Background(), "test")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, nc.IsConnected())
}

func TestConnectUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	cfg := process.Config{NATSURL: "nats://user:secret@" + addr, NodeID: "n1"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cfg.Connect(ctx, "test")
	require.ErrorIs(t, err, process.ErrUnreachable)
	require.NotContains(t, err.Error(), "secret", "the password is redacted")
	require.NotContains(t, err.Error(), "\n")
	require.True(t, strings.Contains(err.Error(), addr), err.Error())
	require.False(t, errors.Is(err, process.ErrInvalidConfig))
}

func TestLoadAuditKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "audit.key")
	require.NoError(t, os.WriteFile(good, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	short := filepath.Join(dir, "short.key")
	require.NoError(t, os.WriteFile(short, []byte("too short"), 0o600))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	k, err := process.LoadAuditKey(good, env(nil))
	require.NoError(t, err)
	require.Equal(t, "0123456789abcdef0123456789abcdef", string(k))
	k, err = process.LoadAuditKey("", env(map[string]string{process.EnvAuditKey: "fedcba9876543210fedcba9876543210"}))
	require.NoError(t, err)
	require.Equal(t, "fedcba9876543210fedcba9876543210", string(k))

	_, err = process.LoadAuditKey("", env(nil))
	require.ErrorIs(t, err, process.ErrNoAuditKey)
	require.ErrorContains(t, err, "--audit-key-file ($BALDUR_AUDIT_KEY_FILE)")
	_, err = process.LoadAuditKey(short, env(nil))
	require.ErrorIs(t, err, process.ErrInvalidConfig)
	require.ErrorContains(t, err, "want at least 32")
	require.NotContains(t, err.Error(), "too short", "the key is never printed")
	_, err = process.LoadAuditKey(filepath.Join(dir, "missing"), env(nil))
	require.ErrorIs(t, err, process.ErrInvalidConfig)
	_, err = process.LoadAuditKey("", env(map[string]string{process.EnvAuditKey: "short"}))
	require.ErrorIs(t, err, process.ErrInvalidConfig)
}
