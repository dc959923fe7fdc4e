package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// root is the repository root, relative to this package.
const root = "../.."

// natsEnv is the environment deploy/nats/*.conf reads: the server name and
// the passwords of its users. TestMain sets it, as compose.yaml does for
// the nats containers, so that the tests may run in parallel.
var natsEnv = map[string]string{
	"NATS_SERVER_NAME":         "deploytest",
	"BALDUR_SERVICE_PASSWORD":  "service-secret",
	"BALDUR_OPERATOR_PASSWORD": "operator-secret",
	"BALDUR_ADMIN_PASSWORD":    "admin-secret",
	"BALDUR_WORKER_PASSWORD":   "worker-secret",
	"NATS_SYSTEM_PASSWORD":     "system-secret",
}

// passwords maps each NATS user of deploy/nats/accounts.conf to its
// password under natsEnv.
var passwords = map[string]string{
	"service":        natsEnv["BALDUR_SERVICE_PASSWORD"],
	"operator":       natsEnv["BALDUR_OPERATOR_PASSWORD"],
	"admin":          natsEnv["BALDUR_ADMIN_PASSWORD"],
	"breaker-worker": natsEnv["BALDUR_WORKER_PASSWORD"],
	"replay-worker":  natsEnv["BALDUR_WORKER_PASSWORD"],
	"watchdog":       natsEnv["BALDUR_WORKER_PASSWORD"],
}

func TestMain(m *testing.M) {
	for k, v := range natsEnv {
		if err := os.Setenv(k, v); err != nil {
			fmt.Fprintln(os.Stderr, "deploytest:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// path returns the path of a repository file.
func path(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }
