package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/baldurfleet/baldur/internal/telemetry"
)

// Health endpoints a manifest may probe: the workers' (internal/telemetry,
// on --http-addr) and the admin API's.
var (
	workerProbes = []string{"/healthz", "/readyz"}
	adminProbes  = []string{"/api/health", "/readyz"}
)

// probePaths returns the paths the process run by key may be probed on.
func probePaths(key string) []string {
	if key == "baldur admin" {
		return adminProbes
	}
	return workerProbes
}

// image is the image the Dockerfile builds, as the manifests name it.
const image = "baldur:dev"

// composeFile is the part of deploy/compose.yaml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(path("deploy", "compose.yaml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c), "deploy/compose.yaml")
	require.NotEmpty(t, c.Services)
	return c
}

// composeVar matches a compose interpolation: ${NAME}, ${NAME:-default}.
var composeVar = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)(?::?-([^}]*))?\}`)

// confVar matches a variable reference of a NATS config, a value
// "= $NAME" (a quoted "$JS.API..." is a subject, not a reference).
var confVar = regexp.MustCompile(`=\s*\$([A-Z][A-Z0-9_]*)\b`)

// natsConfVars returns the environment variables deploy/nats/*.conf read:
// every $NAME that the files do not define themselves.
func natsConfVars(t *testing.T) []string {
	t.Helper()
	var defined, used []string
	for _, f := range []string{"nats.conf", "accounts.conf"} {
		raw, err := os.ReadFile(path("deploy", "nats", f))
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if name, _, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && !strings.ContainsAny(name, " \"{") && name == strings.ToUpper(name) {
				defined = append(defined, name)
			}
			for _, m := range confVar.FindAllStringSubmatch(line, -1) {
				used = append(used, m[1])
			}
		}
	}
	var out []string
	for _, u := range used {
		if !slices.Contains(defined, u) && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// natsUsers returns the users of deploy/nats/accounts.conf with the
// variable holding each one's password.
func natsUsers(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path("deploy", "nats", "accounts.conf"))
	require.NoError(t, err)
	re := regexp.MustCompile(`user = "([a-z-]+)", password = \$([A-Z_]+)`)
	users := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		users[m[1]] = m[2]
	}
	require.NotEmpty(t, users)
	return users
}

// checkNATSURL checks a BALDUR_NATS_URL of a manifest: each URL's user is
// a user of accounts.conf and its password the variable of that user
// (passwordVar extracts the variable from the password text).
func checkNATSURL(t *testing.T, where, raw string, passwordVar func(string) string) []string {
	t.Helper()
	users := natsUsers(t)
	var hosts []string
	for u := range strings.SplitSeq(raw, ",") {
		// Mask interpolations so that url.Parse sees a plain password.
		masked := composeVar.ReplaceAllStringFunc(u, func(s string) string { return "VAR" + composeVar.FindStringSubmatch(s)[1] })
		masked = regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllString(masked, "VAR$1")
		p, err := url.Parse(masked)
		require.NoError(t, err, "%s: BALDUR_NATS_URL %q", where, u)
		require.NotNil(t, p.User, "%s: BALDUR_NATS_URL %q has no user", where, u)
		want, ok := users[p.User.Username()]
		require.True(t, ok, "%s: NATS user %q is not in deploy/nats/accounts.conf", where, p.User.Username())
		pw, _ := p.User.Password()
		if passwordVar != nil {
			require.Equal(t, want, passwordVar(strings.TrimPrefix(pw, "VAR")), "%s: the password of NATS user %s", where, p.User.Username())
		}
		hosts = append(hosts, p.Host)
	}
	return hosts
}

func TestComposeMatchesTheCode(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	confVars := natsConfVars(t)
	require.Contains(t, confVars, "NATS_SERVER_NAME")
	require.Contains(t, confVars, "BALDUR_SERVICE_PASSWORD")
	var natsNodes []string
	var workers = map[string]int{}
	for name, svc := range c.Services {
		where := "compose.yaml: service " + name
		switch {
		case strings.HasPrefix(svc.Image, "nats:"):
			natsNodes = append(natsNodes, name)
			for _, v := range confVars {
				require.Contains(t, svc.Environment, v, "%s: deploy/nats reads $%s", where, v)
			}
		case svc.Image == image:
			key, _ := specOf(t, where, svc.Command)
			flags := checkArgs(t, where, svc.Command)
			for env, val := range svc.Environment {
				checkEnv(t, where, svc.Command, env)
				if env == "BALDUR_NATS_URL" {
					hosts := checkNATSURL(t, where, val, func(pw string) string { return pw })
					require.Len(t, hosts, 3, "%s: every NATS node", where)
				}
			}
			require.Contains(t, svc.Environment, "BALDUR_NATS_URL", where)
			if key != "baldur admin" {
				require.Equal(t, "3", flags["replicas"], "%s: --replicas 3 on a three-node cluster", where)
				require.Equal(t, 2, svc.Deploy.Replicas, "%s: two of each worker", where)
				workers[key]++
			}
			addr := flags["http-addr"]
			require.NotEmpty(t, addr, "%s: --http-addr serves the health endpoints", where)
			checkProbeURL(t, where, key, addr, svc.Healthcheck.Test)
		}
	}
	slices.Sort(natsNodes)
	require.Equal(t, []string{"nats-1", "nats-2", "nats-3"}, natsNodes)
	for _, name := range cmdDirs(t) {
		if name != "baldur" {
			require.Equal(t, 1, workers[name], "compose.yaml runs %s", name)
		}
	}
	require.Contains(t, c.Services, "admin")
	require.Contains(t, c.Services, "postgres")
}

// checkProbeURL checks a compose healthcheck: an HTTP GET of a health path
// of the process, on the port it listens on.
func checkProbeURL(t *testing.T, where, key, addr string, test []string) {
	t.Helper()
	require.NotEmpty(t, test, "%s: healthcheck", where)
	raw := test[len(test)-1]
	u, err := url.Parse(raw)
	require.NoError(t, err, "%s: healthcheck URL %q", where, raw)
	require.Contains(t, probePaths(key), u.Path, "%s: %s serves no %s", where, key, u.Path)
	_, port, ok := strings.Cut(addr, ":")
	require.True(t, ok, "%s: --http-addr %q has no port", where, addr)
	require.Equal(t, port, u.Port(), "%s: healthcheck port", where)
}

// k8sObject is the part of a Kubernetes object the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// readK8s decodes every object of deploy/k8s/*.yaml (kustomization.yaml
// aside) by file.
func readK8s(t *testing.T) map[string][]k8sObject {
	t.Helper()
	entries, err := os.ReadDir(path("deploy", "k8s"))
	require.NoError(t, err)
	out := map[string][]k8sObject{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") || e.Name() == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(path("deploy", "k8s", e.Name()))
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "deploy/k8s/%s", e.Name())
			out[e.Name()] = append(out[e.Name()], o)
		}
	}
	require.NotEmpty(t, out)
	return out
}

// k8sVar matches a Kubernetes dependent variable: $(NAME).
var k8sVar = regexp.MustCompile(`\$\(([A-Z][A-Z0-9_]*)\)`)

func TestKubernetesMatchesTheCode(t *testing.T) {
	t.Parallel()
	files := readK8s(t)
	configMaps := map[string]map[string]string{}
	kinds := map[string][]string{}
	for _, objs := range files {
		for _, o := range objs {
			kinds[o.Kind] = append(kinds[o.Kind], o.Metadata.Name)
			if o.Kind == "ConfigMap" {
				configMaps[o.Metadata.Name] = o.Data
			}
		}
	}
	var deployed []string
	for file, objs := range files {
		for _, o := range objs {
			if o.Kind != "Deployment" {
				continue
			}
			where := "deploy/k8s/" + file + ": Deployment " + o.Metadata.Name
			ps := o.Spec.Template.Spec
			require.True(t, ps.SecurityContext.RunAsNonRoot, "%s: runAsNonRoot", where)
			require.NotZero(t, ps.SecurityContext.RunAsUser, "%s: a non-root uid", where)
			require.NotNil(t, o.Spec.Replicas, where)
			require.GreaterOrEqual(t, *o.Spec.Replicas, 2, "%s: a PodDisruptionBudget needs two replicas", where)
			require.Contains(t, kinds["PodDisruptionBudget"], o.Metadata.Name, "%s: a PodDisruptionBudget", where)
			require.Len(t, ps.Containers, 1, where)
			c := ps.Containers[0]
			require.Equal(t, image, c.Image, where)
			argv := append(slices.Clone(c.Command), c.Args...)
			key, _ := specOf(t, where, argv)
			deployed = append(deployed, key)
			flags := checkArgs(t, where, argv)

			// The container's environment: the ConfigMaps' keys, then env.
			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				cm, ok := configMaps[ef.ConfigMapRef.Name]
				require.True(t, ok, "%s: ConfigMap %s is not in deploy/k8s", where, ef.ConfigMapRef.Name)
				for k, v := range cm {
					env[k] = v
				}
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			// A variable the binary does not read must feed another's
			// $(NAME) expansion.
			referenced := map[string]bool{}
			for _, v := range env {
				for _, m := range k8sVar.FindAllStringSubmatch(v, -1) {
					referenced[m[1]] = true
				}
			}
			for name := range referenced {
				require.Contains(t, env, name, "%s: $(%s) names no variable", where, name)
			}
			_, s := specOf(t, where, argv)
			for name := range env {
				require.True(t, s.envs[name] || referenced[name],
					"%s: %s reads no %s and no other variable expands it", where, key, name)
			}
			require.Contains(t, env, "BALDUR_NATS_URL", where)
			checkNATSURL(t, where, env["BALDUR_NATS_URL"], nil)
			if key != "baldur admin" {
				require.Equal(t, "3", env["BALDUR_REPLICAS"], "%s: R3 streams", where)
			}

			// Probes: real paths, on the port the process listens on.
			addr := flags["http-addr"]
			if addr == "" {
				addr = env["BALDUR_HTTP_ADDR"]
			}
			_, port, ok := strings.Cut(addr, ":")
			require.True(t, ok, "%s: --http-addr or BALDUR_HTTP_ADDR must set the port of the probes", where)
			require.NotNil(t, c.LivenessProbe, "%s: livenessProbe", where)
			require.NotNil(t, c.ReadinessProbe, "%s: readinessProbe", where)
			for _, p := range []*k8sProbe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p == nil {
					continue
				}
				require.Contains(t, probePaths(key), p.HTTPGet.Path, "%s: %s serves no %s", where, key, p.HTTPGet.Path)
				require.Equal(t, port, containerPort(t, where, c, p.HTTPGet.Port), "%s: probe port", where)
			}
			if key != "baldur admin" {
				require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, where)
				require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, where)
			}
			require.NotEmpty(t, c.Resources.Requests, "%s: resource requests", where)
			require.NotEmpty(t, c.Resources.Limits["memory"], "%s: a memory limit", where)
		}
	}
	for _, name := range cmdDirs(t) {
		if name != "baldur" {
			require.Contains(t, deployed, name)
		}
	}
	require.Contains(t, deployed, "baldur admin")
	require.Contains(t, kinds["Service"], "admin")
}

// containerPort resolves a probe's port (a number or a port name).
func containerPort(t *testing.T, where string, c k8sContainer, port any) string {
	t.Helper()
	switch p := port.(type) {
	case int:
		return strconv.Itoa(p)
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return strconv.Itoa(cp.ContainerPort)
			}
		}
	}
	require.Failf(t, "unknown probe port", "%s: port %v", where, port)
	return ""
}

func TestDockerfileBuildsEveryBinaryAsNonRoot(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(path("deploy", "Dockerfile"))
	require.NoError(t, err)
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var froms []string
	var user string
	var built []string
	for line := range strings.SplitSeq(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
			user = "" // USER applies to its stage
		case "USER":
			user = f[1]
		case "RUN":
			if strings.Contains(line, "go build") {
				require.Contains(t, line, "CGO_ENABLED=0", "static binaries")
				for _, w := range f {
					if name, ok := strings.CutPrefix(w, "./cmd/"); ok {
						built = append(built, name)
					}
				}
			}
		}
	}
	require.GreaterOrEqual(t, len(froms), 2, "a multi-stage build")
	require.True(t, strings.HasPrefix(froms[0], "golang:"), "the builder stage is golang")
	require.False(t, strings.HasPrefix(froms[len(froms)-1], "golang:"), "the runtime image is not the builder")
	slices.Sort(built)
	require.Equal(t, cmdDirs(t), built, "the image holds every binary of cmd/")
	require.NotEmpty(t, user, "the runtime stage sets USER")
	uid, _, _ := strings.Cut(user, ":")
	require.NotContains(t, []string{"0", "root"}, uid, "the runtime user is not root")
}

func TestProbePathsAreServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(telemetry.Handler(nil))
	t.Cleanup(srv.Close)
	for _, p := range workerProbes {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
}
