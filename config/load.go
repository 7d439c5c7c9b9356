package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/defenderbot/defenderbot/graph"
)

// EnvPrefix starts every per-key environment override:
// DEFENDERBOT_<SECTION>_<KEY>, or DEFENDERBOT_<KEY> for top-level keys.
const EnvPrefix = "DEFENDERBOT_"

// usualEnv maps the conventional Azure and Slack variable names to config
// keys. They are applied before the DEFENDERBOT_* names, so when both are set
// the DEFENDERBOT_* form wins (it is the more specific one).
var usualEnv = []struct{ name, key string }{
	{"DEFENDER_BASE_URL", "defender.base_url"},
	{"AZURE_TENANT_ID", "defender.tenant_id"},
	{"AZURE_CLIENT_ID", "defender.app_id"},
	{"AZURE_CLIENT_SECRET", "defender.app_secret"},
	{"AZURE_CLIENT_SECRET_FILE", "defender.app_secret_file"},
	{"AZURE_AUTHORITY_HOST", "defender.authority_host"},
	{"SLACK_BOT_TOKEN", "slack.bot_token"},
	{"SLACK_BOT_TOKEN_FILE", "slack.bot_token_file"},
	{"SLACK_SIGNING_SECRET", "slack.signing_secret"},
	{"SLACK_SIGNING_SECRET_FILE", "slack.signing_secret_file"},
	{"SLACK_APP_TOKEN", "slack.app_token"},
	{"SLACK_APP_TOKEN_FILE", "slack.app_token_file"},
	{"SLACK_API_URL", "slack.api_url"},
}

// UsualEnv returns the conventional environment variable names Load honours,
// mapped to the config key each sets.
func UsualEnv() map[string]string {
	m := make(map[string]string, len(usualEnv))
	for _, u := range usualEnv {
		m[u.name] = u.key
	}
	return m
}

// Load reads the YAML file at path (skipped when path is ""), on top of the
// defaults, then applies environment overrides and reads secrets from
// files. Unknown keys are errors naming the key and its line. Load does not
// validate: call Validate with the purpose at hand. getenv may be nil.
//
// Order, later wins: defaults, file, usual variables (AZURE_CLIENT_ID...),
// DEFENDERBOT_<SECTION>_<KEY>. A secret and its *_file form may not both be
// set once all sources are merged.
func Load(path string, getenv func(string) string) (*Config, error) {
	cfg, problems, err := load(path, getenv)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	cfg.normalize()
	return cfg, nil
}

// Check loads like Load, then validates for purpose, and returns every
// problem it finds in one *ValidationError: bad keys and values in the file
// and the environment, unreadable secret files, and the validation of every
// value that could be read (validate-config lists them all at once). A file
// that cannot be read or is not YAML is returned as a plain error.
func Check(path string, getenv func(string) string, purpose Purpose) error {
	cfg, problems, err := load(path, getenv)
	if err != nil {
		return err
	}
	cfg.normalize()
	var verr *ValidationError
	if err := cfg.Validate(purpose); errors.As(err, &verr) {
		for _, p := range verr.Problems {
			if !slices.Contains(problems, p) {
				problems = append(problems, p)
			}
		}
	} else if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// load returns the configuration with every value that could be read, the
// problems found on the way, and an error only when the file itself cannot
// be read or parsed.
func load(path string, getenv func(string) string) (*Config, []string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg := Default()
	var problems []string
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		p, err := decodeYAML(data, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("config: %s: %w", path, err)
		}
		for _, s := range p {
			problems = append(problems, path+": "+s)
		}
	}
	problems = append(problems, applyEnv(cfg, getenv)...)
	problems = append(problems, readSecretFiles(cfg)...)
	return cfg, problems, nil
}

// Parse decodes YAML configuration on top of the defaults, without the
// environment or secret files (useful to tests and tools).
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	problems, err := decodeYAML(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	cfg.normalize()
	return cfg, nil
}

// decodeYAML decodes data onto cfg key by key, so that one bad key does not
// hide the others: it returns a problem for each unknown key or badly typed
// value (named by its dotted key and line, never echoing a secret), and an
// error only when data is not a single YAML document.
func decodeYAML(data []byte, cfg *Config) ([]string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file: defaults
		}
		return nil, err
	}
	// A second document is almost certainly a mistake (e.g. a stray "---").
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	var problems []string
	decodeSection(root, reflect.ValueOf(cfg).Elem(), "", &problems)
	return problems, nil
}

// decodeSection decodes mapping n onto struct v whose keys start with prefix.
func decodeSection(n *yaml.Node, v reflect.Value, prefix string, problems *[]string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "defender:" with nothing under it
	}
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if prefix != "" {
			what = strings.TrimSuffix(prefix, ".")
		}
		*problems = append(*problems, fmt.Sprintf("line %d: %s must be a mapping of keys", n.Line, what))
		return
	}
	t := v.Type()
	index := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		index[yamlKey(t.Field(i))] = i
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if k.Tag == "!!merge" { // "<<: *anchor"
			decodeSection(val, v, prefix, problems)
			continue
		}
		idx, ok := index[k.Value]
		if !ok {
			*problems = append(*problems, fmt.Sprintf("line %d: unknown key %s", k.Line, key))
			continue
		}
		if seen[k.Value] {
			*problems = append(*problems, fmt.Sprintf("line %d: key %s is set twice", k.Line, key))
			continue
		}
		seen[k.Value] = true
		fv := v.Field(idx)
		if fv.Kind() == reflect.Struct {
			decodeSection(val, fv, key+".", problems)
			continue
		}
		ptr := reflect.New(fv.Type())
		if err := val.Decode(ptr.Interface()); err != nil {
			*problems = append(*problems, fmt.Sprintf("line %d: %s: %s", val.Line, key, badValue(val, fv.Type())))
			continue
		}
		fv.Set(ptr.Elem())
	}
}

// badValue explains why val cannot be a value of type t, in the words of
// the environment overrides' messages and without echoing a secret.
func badValue(val *yaml.Node, t reflect.Type) string {
	shown := ""
	if val.Kind == yaml.ScalarNode && t != secretType {
		shown = fmt.Sprintf(" %q", val.Value)
	}
	switch {
	case t == durationType:
		return "invalid duration" + shown + " (use Go syntax such as 30s or 1h)"
	case t.Kind() == reflect.Bool:
		return "invalid boolean" + shown + " (use true or false)"
	case t.Kind() == reflect.Int:
		return "invalid integer" + shown
	case t.Kind() == reflect.Float64:
		return "invalid number" + shown
	case t.Kind() == reflect.Slice:
		return "must be a list of strings"
	default:
		return "invalid value" + shown + " (want a string)"
	}
}

var (
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[time.Duration]()
)

func yamlKey(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "" {
		return strings.ToLower(f.Name)
	}
	return tag
}

// Field is one leaf key of the configuration.
type Field struct {
	Key    string // dotted YAML key, e.g. "defender.poll_interval"
	Env    string // its DEFENDERBOT_* variable
	Secret bool
	value  reflect.Value
}

// Fields lists every leaf key of cfg in declaration order.
func Fields(cfg *Config) []Field {
	var out []Field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			key := prefix + yamlKey(t.Field(i))
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct {
				walk(fv, key+".")
				continue
			}
			out = append(out, Field{
				Key:    key,
				Env:    EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
				Secret: fv.Type() == secretType,
				value:  fv,
			})
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return out
}

func applyEnv(cfg *Config, getenv func(string) string) []string {
	fields := Fields(cfg)
	byKey := make(map[string]Field, len(fields))
	for _, f := range fields {
		byKey[f.Key] = f
	}
	var problems []string
	set := func(name, raw string, f Field) {
		if err := setField(f.value, raw); err != nil {
			// Never echo a secret's value back.
			if f.Secret {
				problems = append(problems, fmt.Sprintf("%s: invalid value", name))
			} else {
				problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			}
		}
	}
	for _, u := range usualEnv {
		if raw, ok := lookup(getenv, u.name); ok {
			set(u.name, raw, byKey[u.key])
		}
	}
	for _, f := range fields {
		if raw, ok := lookup(getenv, f.Env); ok {
			set(f.Env, raw, f)
		}
	}
	return problems
}

// lookup treats an empty variable as unset, like most twelve-factor tools:
// an exported-but-empty variable should not wipe a file's value.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func setField(v reflect.Value, raw string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid duration %q (use Go syntax such as 30s or 1h)", raw)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid boolean %q (use true or false)", raw)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid integer %q", raw)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", raw)
		}
		v.SetFloat(x)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		list := []string{}
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// secretFile pairs each secret with the key naming a file that holds it.
func secretFiles(cfg *Config) []struct {
	key, fileKey string
	secret       *Secret
	file         string
} {
	return []struct {
		key, fileKey string
		secret       *Secret
		file         string
	}{
		{"defender.app_secret", "defender.app_secret_file", &cfg.Defender.AppSecret, cfg.Defender.AppSecretFile},
		{"slack.bot_token", "slack.bot_token_file", &cfg.Slack.BotToken, cfg.Slack.BotTokenFile},
		{"slack.signing_secret", "slack.signing_secret_file", &cfg.Slack.SigningSecret, cfg.Slack.SigningSecretFile},
		{"slack.app_token", "slack.app_token_file", &cfg.Slack.AppToken, cfg.Slack.AppTokenFile},
		{"store.dsn", "store.dsn_file", &cfg.Store.DSN, cfg.Store.DSNFile},
		{"iocs.taxii.password", "iocs.taxii.password_file", &cfg.IOCs.TAXII.Password, cfg.IOCs.TAXII.PasswordFile},
		{"iocs.taxii.token", "iocs.taxii.token_file", &cfg.IOCs.TAXII.Token, cfg.IOCs.TAXII.TokenFile},
	}
}

func readSecretFiles(cfg *Config) []string {
	var problems []string
	for _, s := range secretFiles(cfg) {
		if s.file == "" {
			continue
		}
		// store.dsn has a default; only an explicit value conflicts.
		if s.secret.IsSet() && !(s.key == "store.dsn" && *s.secret == Default().Store.DSN) {
			problems = append(problems, fmt.Sprintf("%s and %s are both set: use only one", s.key, s.fileKey))
			continue
		}
		data, err := os.ReadFile(s.file)
		if err != nil {
			// The path is not secret; the error from os names only the path.
			problems = append(problems, fmt.Sprintf("%s: %v", s.fileKey, err))
			continue
		}
		// Files written by editors and `echo` end with a newline that is
		// never part of the secret.
		val := strings.TrimRight(string(data), "\r\n")
		if strings.TrimSpace(val) == "" {
			problems = append(problems, fmt.Sprintf("%s: file %s is empty", s.fileKey, s.file))
			continue
		}
		*s.secret = Secret(val)
	}
	return problems
}

// normalize canonicalises case-insensitive enums and trims stray spaces so
// that validation and consumers see one spelling.
func (c *Config) normalize() {
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.Defender.BaseURL = strings.TrimRight(strings.TrimSpace(c.Defender.BaseURL), "/")
	c.Defender.AuthorityHost = strings.TrimRight(strings.TrimSpace(c.Defender.AuthorityHost), "/")
	c.Defender.TenantID = strings.TrimSpace(c.Defender.TenantID)
	c.Defender.AppID = strings.TrimSpace(c.Defender.AppID)
	if u := strings.TrimSpace(c.Slack.APIURL); u != "" && !strings.HasSuffix(u, "/") {
		// slack-go joins method names onto the URL and needs the slash.
		c.Slack.APIURL = u + "/"
	}
	c.Defender.GraphBaseURL = strings.TrimRight(strings.TrimSpace(c.Defender.GraphBaseURL), "/")
	c.Defender.AlertsAPI = strings.ToLower(strings.TrimSpace(c.Defender.AlertsAPI))
	c.Alerts.MinSeverity = canonical(c.Alerts.MinSeverity, graph.Severities())
	c.Alerts.Channel = strings.TrimSpace(c.Alerts.Channel)
	if c.Alerts.ServiceSources == nil {
		c.Alerts.ServiceSources = []string{}
	}
	for i, src := range c.Alerts.ServiceSources {
		c.Alerts.ServiceSources[i] = canonical(src, graph.ServiceSources())
	}
	c.Store.Driver = strings.ToLower(strings.TrimSpace(c.Store.Driver))
	c.IOCs.Mode = strings.ToLower(strings.TrimSpace(c.IOCs.Mode))
	c.IOCs.Patterns = strings.ToLower(strings.TrimSpace(c.IOCs.Patterns))
	c.IOCs.Action = canonical(c.IOCs.Action, IndicatorActions)
	c.IOCs.Severity = canonical(c.IOCs.Severity, Severities)
	c.IOCs.SekoiaBaseURL = strings.TrimRight(strings.TrimSpace(c.IOCs.SekoiaBaseURL), "/")
	c.IOCs.STIXObjectsPath = strings.TrimSpace(c.IOCs.STIXObjectsPath)
	c.IOCs.TAXII.URL = strings.TrimSpace(c.IOCs.TAXII.URL)
	c.IOCs.TAXII.Collection = strings.TrimSpace(c.IOCs.TAXII.Collection)
	for i, a := range c.Approval.ActionsWithoutApproval {
		c.Approval.ActionsWithoutApproval[i] = strings.ToLower(strings.TrimSpace(a))
	}
	if c.Approval.Approvers == nil {
		c.Approval.Approvers = []string{}
	}
	if c.Approval.Requesters == nil {
		c.Approval.Requesters = []string{}
	}
	if c.Approval.ActionsWithoutApproval == nil {
		c.Approval.ActionsWithoutApproval = []string{}
	}
}

// canonical returns the allowed spelling matching s case-insensitively, or s.
func canonical(s string, allowed []string) string {
	s = strings.TrimSpace(s)
	for _, a := range allowed {
		if strings.EqualFold(a, s) {
			return a
		}
	}
	return s
}

// knownOtherEnv are DEFENDERBOT_* variables that are not configuration keys.
var knownOtherEnv = []string{
	"DEFENDERBOT_CONFIG",                        // the configuration file
	"DEFENDERBOT_TEST_POSTGRES_DSN",             // tests
	"DEFENDERBOT_PG_DIR", "DEFENDERBOT_PG_PORT", // .ci/postgres
}

// UnknownEnv returns the DEFENDERBOT_* variables in environ (os.Environ form,
// NAME=value) that name no configuration key: most likely misspellings,
// which would otherwise be ignored without a word.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	for _, f := range Fields(Default()) {
		known[f.Env] = true
	}
	for _, n := range knownOtherEnv {
		known[n] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
