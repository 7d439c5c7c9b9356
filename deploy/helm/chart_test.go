// Package helm_test renders the Helm chart in defenderbot/ with the helm
// binary and checks what it produces: the ConfigMap loads and validates with
// the real configuration loader, the pod is hardened, and the chart refuses
// what cannot work.
package helm_test

import (
	"bytes"
	"errors"
	"fmt"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/defenderbot/defenderbot/config"
)

const (
	chartDir = "defenderbot"
	// helmVersion is the Helm .ci/run installs.
	helmVersion = "v4.3.2"
)

// helmBinary finds helm on PATH or where `go install` puts it.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skipf("helm is not installed, so the chart is not rendered (install it with: go install helm.sh/helm/v4/cmd/helm@%s; .ci/run does)", helmVersion)
	return ""
}

// manifest is one rendered Kubernetes object.
type manifest map[string]any

func (m manifest) kind() string { return str(m["kind"]) }

// rendered is the output of one `helm template`.
type rendered []manifest

func (r rendered) find(kind string) manifest {
	for _, m := range r {
		if m.kind() == kind {
			return m
		}
	}
	return nil
}

func (r rendered) kinds() []string {
	var ks []string
	for _, m := range r {
		ks = append(ks, m.kind())
	}
	slices.Sort(ks)
	return ks
}

// helmTemplate renders the chart with the given values files (relative to
// this directory) and --set flags; err carries helm's stderr.
func helmTemplate(t *testing.T, files []string, sets ...string) (rendered, error) {
	t.Helper()
	args := []string{"template", "defenderbot", chartDir, "--namespace", "defenderbot"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(stderr.String())
	}
	var out rendered
	dec := yaml.NewDecoder(&stdout)
	for {
		var m map[string]any // (a named map type would be used for nested maps too)
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "helm template printed invalid YAML")
		if m != nil {
			out = append(out, manifest(m))
		}
	}
	return out, nil
}

// renders caches mustTemplate's output: helm takes a second per run.
var renders sync.Map

func mustTemplate(t *testing.T, files []string, sets ...string) rendered {
	t.Helper()
	key := strings.Join(files, ",") + "|" + strings.Join(sets, ",")
	if r, ok := renders.Load(key); ok {
		return r.(rendered)
	}
	r, err := helmTemplate(t, files, sets...)
	require.NoError(t, err)
	renders.Store(key, r)
	return r
}

// Small accessors for untyped YAML.
func str(v any) string { s, _ := v.(string); return s }
func obj(v any) map[string]any {
	if m, ok := v.(manifest); ok {
		return m
	}
	m, _ := v.(map[string]any)
	return m
}
func list(v any) []any { l, _ := v.([]any); return l }
func dig(v any, keys ...string) any {
	for _, k := range keys {
		v = obj(v)[k]
	}
	return v
}

func podSpec(t *testing.T, r rendered) map[string]any {
	t.Helper()
	d := r.find("Deployment")
	require.NotNil(t, d, "no Deployment rendered")
	return obj(dig(d, "spec", "template", "spec"))
}

func container(t *testing.T, r rendered) map[string]any {
	t.Helper()
	cs := list(podSpec(t, r)["containers"])
	require.Len(t, cs, 1)
	return obj(cs[0])
}

// fakeExistingSecret stands in for a Secret the user manages
// (secrets.existingSecret), with the keys the README names.
var fakeExistingSecret = map[string]string{
	"AZURE_CLIENT_SECRET":   "azure-client-secret",
	"SLACK_BOT_TOKEN":       "xoxb-1-2-abc",
	"SLACK_SIGNING_SECRET":  "signing-secret",
	"SLACK_APP_TOKEN":       "xapp-1-2-abc",
	"DEFENDERBOT_STORE_DSN": "postgres://defenderbot:pw@postgres.example.internal:5432/defenderbot?sslmode=require",
	// (no DEFENDERBOT_IOCS_TAXII_TOKEN: the example uses Basic)
	"DEFENDERBOT_IOCS_TAXII_PASSWORD": "taxii-api-key",
}

// podEnv is the environment the container would get: plain values, the
// pod's name for fieldRefs, and secretKeyRefs resolved from the rendered
// Secret or, for an existing one, from fakeExistingSecret.
func podEnv(t *testing.T, r rendered) map[string]string {
	t.Helper()
	secrets := map[string]map[string]string{}
	for _, m := range r {
		if m.kind() == "Secret" {
			data := map[string]string{}
			for k, v := range obj(m["stringData"]) {
				data[k] = str(v)
			}
			secrets[str(dig(m, "metadata", "name"))] = data
		}
	}
	env := map[string]string{}
	for _, e := range list(container(t, r)["env"]) {
		e := obj(e)
		name := str(e["name"])
		switch {
		case dig(e, "valueFrom", "secretKeyRef") != nil:
			ref := obj(dig(e, "valueFrom", "secretKeyRef"))
			data, ok := secrets[str(ref["name"])]
			if !ok {
				data = fakeExistingSecret
			}
			val, ok := data[str(ref["key"])]
			if optional, _ := ref["optional"].(bool); optional && !ok {
				continue
			}
			require.True(t, ok, "env %s names key %s, which secret %s does not have", name, ref["key"], ref["name"])
			env[name] = val
		case dig(e, "valueFrom", "fieldRef") != nil:
			env[name] = "defenderbot-7d9f8-abcde"
		default:
			env[name] = str(e["value"])
		}
	}
	return env
}

// loadRendered loads the rendered ConfigMap's config.yaml with the pod's
// environment through the real loader, and validates it for serve exactly
// as `defenderbot validate-config --for serve` does.
func loadRendered(t *testing.T, r rendered) *config.Config {
	t.Helper()
	cm := r.find("ConfigMap")
	require.NotNil(t, cm, "no ConfigMap rendered")
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(str(dig(cm, "data", "config.yaml"))), 0o600))
	env := podEnv(t, r)
	getenv := func(k string) string { return env[k] }
	require.NoError(t, config.Check(file, getenv, config.ForServe), "validate-config refuses the rendered configuration")
	cfg, err := config.Load(file, getenv)
	require.NoError(t, err)
	return cfg
}

var examples = []struct {
	name, file string
	replicas   int
	driver     string
}{
	{"default", "examples/default.yaml", 1, "sqlite"},
	{"postgres-ha", "examples/postgres-ha.yaml", 3, "postgres"},
}

// TestExamplesRenderAValidConfiguration: both example values files render
// a ConfigMap that the real loader and validation accept for serve.
func TestExamplesRenderAValidConfiguration(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			r := mustTemplate(t, []string{ex.file})
			cfg := loadRendered(t, r)
			assert.Equal(t, ex.driver, cfg.Store.Driver)
			assert.False(t, cfg.Slack.SocketMode())
			assert.Equal(t, ":8080", cfg.Listen)
			assert.Equal(t, float64(ex.replicas), toFloat(dig(r.find("Deployment"), "spec", "replicas")))
			assert.Equal(t, "/readyz", str(dig(container(t, r), "readinessProbe", "httpGet", "path")))
			assert.Equal(t, "/healthz", str(dig(container(t, r), "livenessProbe", "httpGet", "path")))
			if ex.driver == "postgres" {
				assert.Equal(t, fakeExistingSecret["DEFENDERBOT_STORE_DSN"], cfg.Store.DSN.Value(), "the DSN comes from the Secret")
				assert.Nil(t, r.find("Secret"), "existingSecret: the chart creates no Secret")
				assert.Nil(t, r.find("PersistentVolumeClaim"))
				assert.NotNil(t, r.find("PodDisruptionBudget"))
				assert.NotNil(t, r.find("ServiceMonitor"))
				assert.True(t, cfg.IOCs.Enabled)
				assert.Equal(t, fakeExistingSecret["DEFENDERBOT_IOCS_TAXII_PASSWORD"], cfg.IOCs.TAXII.Password.Value(), "the TAXII password comes from the Secret")
				assert.True(t, cfg.Alerts.Enabled)
			} else {
				assert.NotNil(t, r.find("Secret"))
				assert.NotNil(t, r.find("PersistentVolumeClaim"))
				assert.Nil(t, r.find("PodDisruptionBudget"), "a one-replica PDB would block every node drain")
				assert.Equal(t, "Recreate", str(dig(r.find("Deployment"), "spec", "strategy", "type")), "two pods never share the SQLite file")
			}
		})
	}
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case float64:
		return n
	}
	return -1
}

// TestPodIsHardened: non-root, read-only root filesystem, no privilege
// escalation, no capabilities, seccomp RuntimeDefault, no API token; the
// only writable paths are /tmp and (SQLite) the database's directory.
func TestPodIsHardened(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			r := mustTemplate(t, []string{ex.file})
			pod, c := podSpec(t, r), container(t, r)
			assert.Equal(t, true, dig(pod, "securityContext", "runAsNonRoot"))
			assert.Equal(t, "RuntimeDefault", str(dig(pod, "securityContext", "seccompProfile", "type")))
			assert.Equal(t, false, pod["automountServiceAccountToken"])
			sc := obj(c["securityContext"])
			assert.Equal(t, false, sc["allowPrivilegeEscalation"])
			assert.Equal(t, true, sc["readOnlyRootFilesystem"])
			assert.Equal(t, []any{"ALL"}, dig(sc, "capabilities", "drop"))

			writable := map[string]bool{}
			for _, m := range list(c["volumeMounts"]) {
				if ro, _ := obj(m)["readOnly"].(bool); !ro {
					writable[str(obj(m)["mountPath"])] = true
				}
			}
			assert.True(t, writable["/tmp"], "/tmp is writable")
			cfg := loadRendered(t, r)
			if cfg.Store.Driver == "sqlite" {
				assert.True(t, writable[path.Dir(cfg.Store.DSN.Value())], "the SQLite directory %s is a writable volume", path.Dir(cfg.Store.DSN.Value()))
				assert.Len(t, writable, 2)
			} else {
				assert.Len(t, writable, 1)
			}
		})
	}
}

// TestImage: the tag defaults to the chart's appVersion; a digest wins.
func TestImage(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	var meta struct {
		AppVersion string `yaml:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal(chart, &meta))
	require.NotEmpty(t, meta.AppVersion)

	r := mustTemplate(t, []string{"examples/default.yaml"})
	assert.Equal(t, "ghcr.io/defenderbot/defenderbot:"+meta.AppVersion, str(container(t, r)["image"]))
	r = mustTemplate(t, []string{"examples/default.yaml"}, "image.tag=1.2.3")
	assert.Equal(t, "ghcr.io/defenderbot/defenderbot:1.2.3", str(container(t, r)["image"]))
	r = mustTemplate(t, []string{"examples/default.yaml"}, "image.tag=1.2.3", "image.digest=sha256:abcd")
	assert.Equal(t, "ghcr.io/defenderbot/defenderbot@sha256:abcd", str(container(t, r)["image"]))
}

// TestSocketMode: no Service or Ingress for Slack, the app token instead of
// the signing secret; a Service only for the scrape when a ServiceMonitor
// is wanted.
func TestSocketMode(t *testing.T) {
	sets := []string{"slack.mode=socket", "ingress.enabled=false", "secrets.slackAppToken=xapp-1-2-abc"}
	r := mustTemplate(t, []string{"examples/default.yaml"}, sets...)
	assert.NotContains(t, r.kinds(), "Service")
	assert.NotContains(t, r.kinds(), "Ingress")
	env := podEnv(t, r)
	assert.Contains(t, env, "SLACK_APP_TOKEN")
	assert.NotContains(t, env, "SLACK_SIGNING_SECRET")
	cfg := loadRendered(t, r)
	assert.True(t, cfg.Slack.SocketMode())

	r = mustTemplate(t, []string{"examples/default.yaml"}, append(sets, "metrics.serviceMonitor.enabled=true")...)
	assert.Contains(t, r.kinds(), "Service")
	assert.Contains(t, r.kinds(), "ServiceMonitor")
}

// TestNetworkPolicy: ingress only to the HTTP port; egress only DNS, 443
// and (PostgreSQL) the database port.
func TestNetworkPolicy(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			np := mustTemplate(t, []string{ex.file}).find("NetworkPolicy")
			require.NotNil(t, np)
			spec := obj(np["spec"])
			assert.Equal(t, []any{"Ingress", "Egress"}, spec["policyTypes"])
			var in []string
			for _, rule := range list(spec["ingress"]) {
				for _, p := range list(obj(rule)["ports"]) {
					in = append(in, portString(p))
				}
			}
			assert.Equal(t, []string{"http/TCP"}, in)
			var out []string
			for _, rule := range list(spec["egress"]) {
				for _, p := range list(obj(rule)["ports"]) {
					out = append(out, portString(p))
				}
			}
			want := []string{"53/UDP", "53/TCP", "443/TCP"}
			if ex.driver == "postgres" {
				want = append(want, "5432/TCP")
			}
			assert.Equal(t, want, out)
		})
	}
}

func portString(p any) string {
	return fmt.Sprint(obj(p)["port"]) + "/" + str(obj(p)["protocol"])
}

// TestChartRefuses: what cannot work fails at render time with the value
// to change.
func TestChartRefuses(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want string
	}{
		{"several replicas on SQLite", []string{"replicaCount=2"}, "replicaCount 2 needs store.driver postgres"},
		{"unknown driver", []string{"store.driver=mysql"}, "store.driver must be sqlite or postgres"},
		{"unknown Slack mode", []string{"slack.mode=rtm"}, "slack.mode must be http or socket"},
		{"ingress in Socket Mode", []string{"slack.mode=socket", "secrets.slackAppToken=xapp-1"}, "ingress.enabled needs slack.mode http"},
		{"Socket Mode without app token", []string{"slack.mode=socket", "ingress.enabled=false"}, "secrets.slackAppToken is required"},
		{"postgres without DSN", []string{"store.driver=postgres"}, "secrets.storeDSN is required"},
		{"secret in the ConfigMap", []string{"config.slack.bot_token=xoxb-1"}, "config.slack.bot_token: secrets do not belong in the ConfigMap"},
		{"store in config", []string{"config.store.dsn=x.db"}, "config.store is set by the chart"},
		{"TAXII token in the ConfigMap", []string{"config.iocs.taxii.token=abc"}, "config.iocs.taxii.token: secrets do not belong in the ConfigMap"},
		{"no tenant", []string{"config.defender.tenant_id="}, "config.defender.tenant_id is required"},
		{"no approvers", []string{"config.approval.approvers=null"}, "config.approval.approvers must list"},
		{"no bot token", []string{"secrets.slackBotToken="}, "secrets.slackBotToken is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, []string{"examples/default.yaml"}, tc.sets...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Several replicas work on PostgreSQL.
	r := mustTemplate(t, []string{"examples/default.yaml"}, "replicaCount=2", "store.driver=postgres", "secrets.storeDSN=postgres://u:p@db:5432/d")
	assert.Equal(t, "RollingUpdate", str(dig(r.find("Deployment"), "spec", "strategy", "type")))
	loadRendered(t, r)
}

// TestValuesCoverEveryConfigKey: values.yaml's config: lists every
// configuration key a user may set in the ConfigMap (all but secrets, their
// files and what the chart sets itself), so that a new key is documented in
// the chart too.
func TestValuesCoverEveryConfigKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	var values struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &values))
	have := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			have[prefix+k] = true
		}
	}
	walk("", values.Config)

	fields := config.Fields(config.Default())
	secret := map[string]bool{}
	for _, f := range fields {
		if f.Secret {
			secret[f.Key] = true
		}
	}
	chartOwned := map[string]bool{"listen": true, "replica_id": true}
	var missing []string
	for _, f := range fields {
		base, isFile := strings.CutSuffix(f.Key, "_file")
		switch {
		case f.Secret, isFile && secret[base], chartOwned[f.Key], strings.HasPrefix(f.Key, "store."):
			assert.False(t, have[f.Key], "values.yaml config: sets %s, which the chart owns or is a secret", f.Key)
		case !have[f.Key]:
			missing = append(missing, f.Key)
		}
		delete(have, f.Key)
	}
	assert.Empty(t, missing, "configuration keys missing from %s/values.yaml config: (add them with their default)", chartDir)
	assert.Empty(t, have, "values.yaml config: has keys the configuration does not know")
}
