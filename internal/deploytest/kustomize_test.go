package deploytest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// kustomization is the part of a kustomization.yaml (or a Component) the
// tests read.
type kustomization struct {
	Kind            string   `yaml:"kind"`
	Resources       []string `yaml:"resources"`
	Components      []string `yaml:"components"`
	SecretGenerator []any    `yaml:"secretGenerator"`
}

// object is a Kubernetes object as generic YAML, with the file it is in.
type object struct {
	file string
	doc  map[string]any
}

func (o object) kind() string { s, _ := o.doc["kind"].(string); return s }

func (o object) name() string { s, _ := dig(o.doc, "metadata", "name").(string); return s }

// dig walks maps by key.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// list returns v as a list (nil when it is not one).
func list(v any) []any { l, _ := v.([]any); return l }

// readObjects decodes every object of a YAML file.
func readObjects(t *testing.T, file string) []object {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var out []object
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, file)
		if doc != nil {
			out = append(out, object{file: file, doc: doc})
		}
	}
}

// kustomize returns the objects the kustomization in dir puts together:
// its resources (files, or directories with their own kustomization) and
// its components, recursively; secret generators fail the test.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.Unmarshal(raw, &k), dir)
	require.Empty(t, k.SecretGenerator, "%s: a secretGenerator ships a Secret", dir)
	var out []object
	for _, r := range append(slices.Clone(k.Resources), k.Components...) {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		require.NoError(t, err, "%s lists %s", dir, r)
		if st.IsDir() {
			out = append(out, kustomize(t, p)...)
			continue
		}
		out = append(out, readObjects(t, p)...)
	}
	return out
}

// kustomizations are the directories `kubectl apply -k` is documented for.
var kustomizations = []string{"k8s", "k8s-production"}

func TestKustomizationShipsNoSecret(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		objs := kustomize(t, path("deploy", dir))
		require.NotEmpty(t, objs, dir)
		for _, o := range objs {
			require.NotEqual(t, "Secret", o.kind(), "deploy/%s ships %s from %s: applying it would overwrite the real Secret", dir, o.name(), o.file)
		}
	}
	// The example stays, for the keys the Deployments read.
	example := readObjects(t, path("deploy", "k8s", "secret.example.yaml"))
	require.Len(t, example, 1)
	require.Equal(t, "Secret", example[0].kind())
	keys := dig(example[0].doc, "stringData").(map[string]any)
	for _, o := range kustomize(t, path("deploy", "k8s")) {
		for _, c := range list(dig(o.doc, "spec", "template", "spec", "containers")) {
			for _, e := range list(dig(c, "env")) {
				ref, _ := dig(e, "valueFrom", "secretKeyRef").(map[string]any)
				if ref == nil {
					continue
				}
				require.Equal(t, "baldur", ref["name"], "%s: the Secret is baldur", o.file)
				require.Contains(t, keys, ref["key"], "%s reads key %v, which secret.example.yaml does not name", o.file, ref["key"])
			}
		}
	}
	ops := readDoc(t, "operations.md")
	require.True(t, strings.Contains(ops, "create secret generic baldur"), "docs/operations.md says how to create the Secret")
	require.True(t, strings.Contains(ops, "kubectl apply -k deploy/k8s-production"), "docs/operations.md names the production overlay")
}

// containerPorts returns, by Deployment name, its containers' named ports.
func containerPorts(objs []object) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, o := range objs {
		if o.kind() != "Deployment" {
			continue
		}
		ports := map[string]int{}
		for _, c := range list(dig(o.doc, "spec", "template", "spec", "containers")) {
			for _, p := range list(dig(c, "ports")) {
				name, _ := dig(p, "name").(string)
				n, _ := dig(p, "containerPort").(int)
				ports[name] = n
			}
		}
		out[o.name()] = ports
	}
	return out
}

func TestProductionComponents(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, path("deploy", "k8s-production"))
	ports := containerPorts(objs)
	workers := []string{"breaker-worker", "replay-worker", "watchdog"}
	for _, w := range workers {
		require.NotZero(t, ports[w]["http"], "%s has an http port", w)
	}
	require.NotZero(t, ports["admin"]["http"], "admin has an http port")

	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.kind()] = append(byKind[o.kind()], o)
	}
	// The base holds neither: `kubectl apply -k deploy/k8s` needs no CRD.
	for _, o := range kustomize(t, path("deploy", "k8s")) {
		require.NotContains(t, []string{"ServiceMonitor", "NetworkPolicy"}, o.kind(), "the base must apply without the optional components")
	}

	// NetworkPolicy: ingress denied to every pod, but the http ports.
	ingressPorts := map[string][]int{} // app name → allowed ports
	var denyAll, egress bool
	var egressPorts []int
	for _, np := range byKind["NetworkPolicy"] {
		spec := dig(np.doc, "spec")
		types := list(dig(spec, "policyTypes"))
		sel := dig(spec, "podSelector")
		var apps []string
		if v, ok := dig(sel, "matchLabels", "app.kubernetes.io/name").(string); ok {
			apps = []string{v}
		}
		for _, e := range list(dig(sel, "matchExpressions")) {
			for _, v := range list(dig(e, "values")) {
				apps = append(apps, v.(string))
			}
		}
		if dig(sel, "matchLabels", "app.kubernetes.io/part-of") == "baldur" {
			if slices.Contains(types, any("Ingress")) && dig(spec, "ingress") == nil {
				denyAll = true
			}
			if slices.Contains(types, any("Egress")) {
				egress = true
				for _, r := range list(dig(spec, "egress")) {
					for _, p := range list(dig(r, "ports")) {
						egressPorts = append(egressPorts, dig(p, "port").(int))
					}
				}
			}
			continue
		}
		for _, r := range list(dig(spec, "ingress")) {
			for _, p := range list(dig(r, "ports")) {
				for _, a := range apps {
					ingressPorts[a] = append(ingressPorts[a], dig(p, "port").(int))
				}
			}
		}
	}
	require.True(t, denyAll, "a policy denies all ingress to the baldur pods")
	require.True(t, egress, "a policy bounds egress")
	require.Contains(t, egressPorts, 4222, "egress to NATS")
	require.Contains(t, egressPorts, 5432, "egress to PostgreSQL")
	require.Contains(t, egressPorts, 53, "egress to DNS")
	for _, app := range append(slices.Clone(workers), "admin") {
		require.Equal(t, []int{ports[app]["http"]}, ingressPorts[app], "ingress to %s is its http port only", app)
	}

	// ServiceMonitor: /metrics on the http port of a Service per worker.
	require.Len(t, byKind["ServiceMonitor"], 1)
	sm := byKind["ServiceMonitor"][0]
	sel := dig(sm.doc, "spec", "selector", "matchLabels").(map[string]any)
	eps := list(dig(sm.doc, "spec", "endpoints"))
	require.Len(t, eps, 1)
	require.Equal(t, "/metrics", dig(eps[0], "path"))
	portName := dig(eps[0], "port").(string)
	scraped := map[string]bool{}
	for _, svc := range byKind["Service"] {
		labels, _ := dig(svc.doc, "metadata", "labels").(map[string]any)
		match := true
		for k, v := range sel {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		app := dig(svc.doc, "spec", "selector", "app.kubernetes.io/name").(string)
		for _, p := range list(dig(svc.doc, "spec", "ports")) {
			if dig(p, "name") == portName {
				require.Equal(t, "http", dig(p, "targetPort"), "%s targets the container's http port", svc.name())
				require.Equal(t, ports[app]["http"], dig(p, "port"), svc.name())
				scraped[app] = true
			}
		}
	}
	for _, w := range workers {
		require.True(t, scraped[w], "the ServiceMonitor scrapes %s", w)
	}
	for _, o := range objs {
		if ns, ok := dig(o.doc, "metadata", "namespace").(string); ok {
			require.Equal(t, "baldur", ns, o.file)
		}
		require.False(t, strings.Contains(o.file, "secret"), o.file)
	}
}
