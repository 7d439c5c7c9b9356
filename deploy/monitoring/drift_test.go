// Package monitoring_test checks the Grafana dashboard and the Prometheus
// alert rules in this directory against the metrics the binary exports, so
// that they never name a metric or a label that does not exist.
package monitoring_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/defenderbot/defenderbot/metrics"
)

const (
	dashboardFile = "defenderbot-dashboard.json"
	rulesFile     = "prometheus-rules.yaml"
	crdFile       = "prometheusrule.yaml"
	runbookFile   = "README.md"
)

// targetLabels are added by Prometheus and its Kubernetes discovery, not by
// the binary.
var targetLabels = []string{"job", "instance", "namespace", "pod"}

// samples are the argument sets every observer method is called with: the
// second reaches the branches taken on a failure (ok=false) or a throttled
// call (status 429).
var samples = []struct {
	n int64
	b bool
}{{1_000_000, true}, {429, false}}

// exported returns every series name the binary exports with its label
// names. Vectors only appear once they have a child, so every exported
// method of *metrics.Metrics is first called with sample arguments: a
// metric added with its observer method is covered without touching this
// test.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	m := metrics.New()
	v := reflect.ValueOf(m)
	for i := range v.NumMethod() {
		meth, typ := v.Method(i), v.Type().Method(i)
		for _, smp := range samples {
			args := make([]reflect.Value, meth.Type().NumIn())
			for j := range args {
				args[j] = sample(meth.Type().In(j), smp.n, smp.b)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("metrics.%s panicked on sample arguments: %v", typ.Name, r)
					}
				}()
				meth.Call(args)
			}()
		}
	}
	mfs, err := m.Registry.Gather()
	require.NoError(t, err)
	out := map[string][]string{}
	for _, mf := range mfs {
		var labels []string
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		name := mf.GetName()
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"] = append(slices.Clone(labels), "le")
			out[name+"_sum"], out[name+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			out[name] = append(slices.Clone(labels), "quantile")
			out[name+"_sum"], out[name+"_count"] = labels, labels
		default:
			out[name] = labels
		}
	}
	return out
}

func sample(t reflect.Type, n int64, b bool) reflect.Value {
	v := reflect.New(t).Elem()
	switch {
	case t == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Unix(1_800_000_000, 0)))
	case t.Kind() == reflect.String:
		v.SetString("sample")
	case t.Kind() == reflect.Bool:
		v.SetBool(b)
	case v.CanInt():
		v.SetInt(n) // also a time.Duration
	case v.CanUint():
		v.SetUint(uint64(n))
	case v.CanFloat():
		v.SetFloat(float64(n))
	}
	return v
}

// checker checks PromQL expressions against the exported series.
type checker struct {
	series map[string][]string
	parser parser.Parser
}

func newChecker(series map[string][]string) *checker {
	return &checker{series: series, parser: parser.NewParser(parser.Options{})}
}

func (c *checker) known(metric, label string) bool {
	return slices.Contains(targetLabels, label) || slices.Contains(c.series[metric], label)
}

// grafanaVars are Grafana's interval variables, which are not PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// check returns the problems of one expression and the label names its
// series may carry (for legends and annotations).
func (c *checker) check(expr string) (problems []string, labels []string) {
	e, err := c.parser.ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return []string{fmt.Sprintf("%q does not parse: %v", expr, err)}, nil
	}
	labels = slices.Clone(targetLabels)
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if _, ok := c.series[n.Name]; !ok {
				problems = append(problems, fmt.Sprintf("%q: metric %s is not exported", expr, n.Name))
				return nil
			}
			for _, l := range c.series[n.Name] {
				if !slices.Contains(labels, l) {
					labels = append(labels, l)
				}
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !c.known(n.Name, m.Name) {
					problems = append(problems, fmt.Sprintf("%q: %s has no label %s", expr, n.Name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			problems = append(problems, c.checkGrouping(expr, n.Expr, n.Grouping)...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				problems = append(problems, c.checkGrouping(expr, n, n.VectorMatching.MatchingLabels)...)
			}
		}
		return nil
	})
	return problems, labels
}

// checkGrouping: a by/on label must be carried by a metric under node.
func (c *checker) checkGrouping(expr string, node parser.Node, grouping []string) (problems []string) {
	var metricsUnder []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			metricsUnder = append(metricsUnder, vs.Name)
		}
		return nil
	})
	for _, l := range grouping {
		if !slices.ContainsFunc(metricsUnder, func(m string) bool { return c.known(m, l) }) {
			problems = append(problems, fmt.Sprintf("%q: no metric under by/on (%s) has label %s", expr, strings.Join(grouping, ", "), l))
		}
	}
	return problems
}

var templateLabel = regexp.MustCompile(`\{\{\s*\.?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// TestCheckerFindsDrift: the checker itself catches what it must.
func TestCheckerFindsDrift(t *testing.T) {
	c := newChecker(exported(t))
	for _, bad := range []string{
		`defenderbot_no_such_metric_total`,
		`defenderbot_ready{outcome="ok"}`,
		`sum by (api) (defenderbot_ready)`,
		`rate(defenderbot_slack_ack_seconds[5m])`, // a histogram is read through _bucket
		`defenderbot_ready and on (api) defenderbot_ready`,
		`sum(`,
	} {
		problems, _ := c.check(bad)
		assert.NotEmpty(t, problems, bad)
	}
	for _, good := range []string{
		`histogram_quantile(0.99, sum by (le) (rate(defenderbot_slack_ack_seconds_bucket{job=~"$job"}[$__rate_interval])))`,
		`sum by (api, status) (rate(defenderbot_defender_calls_total{status!~"2.."}[5m]))`,
		`sum by (instance, kind) (defenderbot_leases_held)`,
		`vector(3)`,
	} {
		problems, _ := c.check(good)
		assert.Empty(t, problems, good)
	}
}

// TestDashboardNamesOnlyExportedMetrics reads every query, legend and
// variable of the dashboard.
func TestDashboardNamesOnlyExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.UID)
	c := newChecker(exported(t))

	type target struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Type    string   `json:"type"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var walk func(ps []panel)
	queries := 0
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" {
				assert.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				problems, labels := c.check(tg.Expr)
				assert.Empty(t, problems, "panel %q", p.Title)
				for _, m := range templateLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
					assert.Contains(t, labels, m[1], "panel %q: legend %q names a label the query does not have", p.Title, tg.LegendFormat)
				}
			}
		}
	}
	var ps []panel
	for _, r := range dash.Panels {
		var p panel
		require.NoError(t, json.Unmarshal(r, &p))
		ps = append(ps, p)
	}
	walk(ps)
	assert.Greater(t, queries, 10)

	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Definition == "" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		require.NotNil(t, m, "variable %s: %q", v.Name, v.Definition)
		_, ok := c.series[m[1]]
		assert.True(t, ok, "variable %s: metric %s is not exported", v.Name, m[1])
		assert.True(t, c.known(m[1], m[2]), "variable %s: %s has no label %s", v.Name, m[1], m[2])
	}

}

// loadRules parses a rules file with Prometheus's own rule parser (what
// `promtool check rules` runs).
func loadRules(t *testing.T, content []byte, what string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs, "%s does not pass Prometheus's rule checks", what)
	return groups
}

// TestAlertRules: the plain rules file and the PrometheusRule pass
// Prometheus's rule checks, hold the same groups, name only exported
// metrics and labels, and each alert has a runbook.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	groups := loadRules(t, raw, rulesFile)

	crdRaw, err := os.ReadFile(crdFile)
	require.NoError(t, err)
	var crd struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       any    `yaml:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(crdRaw, &crd))
	assert.Equal(t, "monitoring.coreos.com/v1", crd.APIVersion)
	assert.Equal(t, "PrometheusRule", crd.Kind)
	spec, err := yaml.Marshal(crd.Spec)
	require.NoError(t, err)
	assert.Equal(t, groups, loadRules(t, spec, crdFile), "%s and %s differ", rulesFile, crdFile)

	runbooks, err := os.ReadFile(runbookFile)
	require.NoError(t, err)
	c := newChecker(exported(t))
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			alerts = append(alerts, r.Alert)
			problems, labels := c.check(r.Expr)
			assert.Empty(t, problems, name)
			for _, text := range r.Annotations {
				for _, m := range regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`).FindAllStringSubmatch(text, -1) {
					assert.Contains(t, labels, m[1], "%s: an annotation names label %s, which the expression does not have", name, m[1])
				}
			}
			if r.Alert == "" {
				continue
			}
			assert.NotEmpty(t, r.Labels["severity"], "%s has no severity", name)
			assert.NotEmpty(t, r.Annotations["summary"], "%s has no summary", name)
			assert.NotEmpty(t, r.Annotations["runbook"], "%s has no runbook line", name)
			anchor := strings.ToLower(r.Alert)
			assert.True(t, strings.HasSuffix(r.Annotations["runbook_url"], runbookFile+"#"+anchor), "%s: runbook_url %q", name, r.Annotations["runbook_url"])
			assert.Contains(t, string(runbooks), "### "+r.Alert+"\n", "%s has no runbook section in %s", name, runbookFile)
		}
	}
	for _, want := range []string{
		"DefenderbotNoReplicaReady", "DefenderbotTokenAcquisitionFailing", "DefenderbotSlackAckSlow",
		"DefenderbotDefenderThrottled", "DefenderbotIOCSyncFailing", "DefenderbotIOCSyncStale", "DefenderbotApprovalWaiting",
	} {
		assert.Contains(t, alerts, want)
	}
}
