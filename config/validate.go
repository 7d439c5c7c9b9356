package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/robfig/cron/v3"
)

// Purpose says what the configuration is about to be used for; each purpose
// requires different settings.
type Purpose int

const (
	// ForAll checks everything a production deployment needs (validate-config).
	ForAll Purpose = iota
	// ForDefender needs the Defender credentials (action, push-iocs).
	ForDefender
	// ForServe needs Defender and Slack credentials and approval rules.
	ForServe
)

// minObjectBytes is the smallest iocs.max_object_bytes: below it real indicators would not fit.
const minObjectBytes = 1024

// String returns the name used by `validate-config --for`.
func (p Purpose) String() string {
	switch p {
	case ForDefender:
		return "defender"
	case ForServe:
		return "serve"
	case ForAll:
		return "all"
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// ParsePurpose parses "all", "defender" or "serve".
func ParsePurpose(s string) (Purpose, error) {
	for _, p := range []Purpose{ForAll, ForDefender, ForServe} {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown purpose %q (want all, defender or serve)", s)
}

// ValidationError lists every problem found, each naming its key.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid configuration (%d problems): %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// Enumerations accepted by the configuration.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"json", "text"}
	Drivers    = []string{"sqlite", "postgres"}
	SyncModes  = []string{"incremental", "snapshot"}
	// PatternModes are the values of iocs.patterns (ioc.PatternsAll, ioc.PatternsSimple).
	PatternModes = []string{"all", "simple"}
	AlertsAPIs   = []string{AlertsAPILegacy, AlertsAPIGraph}
	// IndicatorActions are Defender's indicator actions (the "action" an indicator asks of Defender).
	IndicatorActions = defender.IndicatorActions()
	// Severities are Defender's indicator severities.
	Severities = defender.IndicatorSeverities()
)

var (
	// Slack IDs: users U…/W… (Enterprise Grid), user groups S…, channels C…/G…/D….
	approverRE  = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	requesterRE = approverRE
	channelRE   = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	commandRE   = regexp.MustCompile(`^/[a-z0-9_-]{1,31}$`)
	// Tenant IDs are GUIDs or verified domains; app IDs are GUIDs but emulators
	// and tests use other tokens, so only forbid what breaks a URL.
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
)

// Validate returns a *ValidationError listing every problem for purpose, or
// nil. Messages name keys, never secret values.
func (c *Config) Validate(purpose Purpose) error {
	v := &validator{}
	c.validateCommon(v)
	needDefender := true // every purpose talks to Defender
	needServe := purpose == ForServe || purpose == ForAll
	if needDefender {
		c.validateDefenderCreds(v)
	}
	if needServe {
		c.validateServe(v)
	}
	if purpose == ForAll || c.IOCs.Enabled {
		c.validateIOCsEnabled(v)
	}
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct{ problems []string }

func (v *validator) addf(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *validator) oneOf(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		v.addf("%s must be one of %s (got %q)", key, strings.Join(allowed, ", "), val)
	}
}

// httpsURL checks an absolute https URL. With loopbackHTTP, plain http is
// allowed on loopback (Slack emulators); anything else would send
// credentials in clear. The Defender client itself accepts https only.
func (v *validator) httpsURL(key, raw string, loopbackHTTP bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		v.addf("%s must be an absolute https URL (got %q)", key, raw)
		return
	}
	if u.User != nil {
		v.addf("%s must not contain credentials", key)
	}
	if u.Scheme == "http" && !(loopbackHTTP && isLoopback(u.Hostname())) {
		v.addf("%s must be https (got %q)", key, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		v.addf("%s must not have a query or fragment", key)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateCommon(v *validator) {
	if c.Listen == "" {
		v.addf("listen is required (e.g. :8080)")
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		v.addf("listen must be host:port or :port (got %q)", c.Listen)
	}
	v.oneOf("log_level", c.LogLevel, LogLevels)
	v.oneOf("log_format", c.LogFormat, LogFormats)
	if c.MemoryLimitMiB < 0 {
		v.addf("memory_limit_mib must be 0 (the Go runtime's own limit) or more (got %d)", c.MemoryLimitMiB)
	}

	d := c.Defender
	v.httpsURL("defender.base_url", d.BaseURL, false)
	v.httpsURL("defender.authority_host", d.AuthorityHost, false)
	if u, err := url.Parse(d.AuthorityHost); err == nil && u.Path != "" && u.Path != "/" {
		v.addf("defender.authority_host must be a host only, without the tenant (got %q)", d.AuthorityHost)
	}
	for _, dur := range []struct {
		key string
		val int64
	}{
		{"defender.timeout", int64(d.Timeout)},
		{"defender.poll_interval", int64(d.PollInterval)},
		{"defender.poll_timeout", int64(d.PollTimeout)},
		{"approval.ttl", int64(c.Approval.TTL)},
		{"slack.timeout", int64(c.Slack.Timeout)},
		{"server.read_header_timeout", int64(c.Server.ReadHeaderTimeout)},
		{"server.read_timeout", int64(c.Server.ReadTimeout)},
		{"server.write_timeout", int64(c.Server.WriteTimeout)},
		{"server.idle_timeout", int64(c.Server.IdleTimeout)},
		{"server.shutdown_timeout", int64(c.Server.ShutdownTimeout)},
	} {
		if dur.val <= 0 {
			v.addf("%s must be a positive duration", dur.key)
		}
	}
	if d.PollInterval > 0 && d.PollTimeout > 0 && d.PollTimeout < d.PollInterval {
		v.addf("defender.poll_timeout (%s) must not be shorter than defender.poll_interval (%s)", d.PollTimeout, d.PollInterval)
	}
	if w := c.Server.WriteTimeout; w > 0 && w <= SlackAckTimeout {
		// A Slack request is answered within SlackAckTimeout; a shorter
		// write timeout would cut its answer off.
		v.addf("server.write_timeout (%s) must be longer than Slack's acknowledgement time (%s)", w, SlackAckTimeout)
	}
	if d.MaxRetries < 1 || d.MaxRetries > 20 {
		v.addf("defender.max_retries must be between 1 and 20 (got %d)", d.MaxRetries)
	}

	s := c.Slack
	v.httpsURL("slack.api_url", s.APIURL, true)
	if !commandRE.MatchString(s.Command) {
		v.addf("slack.command must be a slash command such as /defender (got %q)", s.Command)
	}
	if s.ApprovalChannel != "" && !channelRE.MatchString(s.ApprovalChannel) {
		v.addf("slack.approval_channel must be a channel ID such as C0123ABCD (got %q)", s.ApprovalChannel)
	}
	if s.BotToken.IsSet() && !strings.HasPrefix(s.BotToken.Value(), "xoxb-") {
		v.addf("slack.bot_token must be a bot token (starting with xoxb-)")
	}
	if s.AppToken.IsSet() && !strings.HasPrefix(s.AppToken.Value(), "xapp-") {
		v.addf("slack.app_token must be an app-level token (starting with xapp-)")
	}

	a := c.Approval
	for i, id := range a.Approvers {
		if !approverRE.MatchString(id) {
			v.addf("approval.approvers[%d] must be a Slack user ID (U…/W…) or user-group ID (S…) (got %q)", i, id)
		}
	}
	for i, id := range a.Requesters {
		if !requesterRE.MatchString(id) {
			v.addf("approval.requesters[%d] must be a Slack user ID (U…/W…) or user-group ID (S…) (got %q)", i, id)
		}
	}
	if dup := firstDuplicate(a.Approvers); dup != "" {
		v.addf("approval.approvers lists %s twice", dup)
	}
	if a.RequiredApprovals < 1 {
		v.addf("approval.required_approvals must be at least 1 (got %d)", a.RequiredApprovals)
	} else if onlyUsers(a.Approvers) && len(a.Approvers) > 0 && a.RequiredApprovals > len(a.Approvers) {
		// Without groups the approver list is closed: more approvals than
		// approvers could never be collected.
		v.addf("approval.required_approvals (%d) exceeds the number of approvers (%d)", a.RequiredApprovals, len(a.Approvers))
	}
	if a.MaxBulk < 1 || a.MaxBulk > MaxMaxBulk {
		v.addf("approval.max_bulk must be between 1 and %d (got %d): a request's machines must fit one Slack message", MaxMaxBulk, a.MaxBulk)
	}
	for i, name := range a.ActionsWithoutApproval {
		if !actions.Name(name).Valid() {
			v.addf("approval.actions_without_approval[%d]: unknown action %q (known: %s)", i, name, actionList())
		}
	}

	v.oneOf("store.driver", c.Store.Driver, Drivers)
	if !c.Store.DSN.IsSet() {
		v.addf("store.dsn is required")
	}

	v.httpsURL("defender.graph_base_url", d.GraphBaseURL, false)
	v.oneOf("defender.alerts_api", d.AlertsAPI, AlertsAPIs)
	al := c.Alerts
	v.oneOf("alerts.min_severity", al.MinSeverity, graph.Severities())
	if al.PollInterval < 10*time.Second {
		v.addf("alerts.poll_interval must be at least 10s (got %s)", al.PollInterval)
	}
	if al.Backfill < 0 || al.Backfill > 30*24*time.Hour {
		v.addf("alerts.backfill must be between 0 and 720h (got %s)", al.Backfill)
	}
	for i, src := range al.ServiceSources {
		if !slices.Contains(graph.ServiceSources(), src) {
			v.addf("alerts.service_sources[%d]: unknown service source %q (known: %s)", i, src, strings.Join(graph.ServiceSources(), ", "))
		}
	}
	if al.Channel != "" && !channelRE.MatchString(al.Channel) {
		v.addf("alerts.channel must be a channel ID such as C0123ABCD (got %q)", al.Channel)
	}
	if al.Enabled && al.Channel == "" {
		v.addf("alerts.channel is required when alerts.enabled is true")
	}

	i := c.IOCs
	if err := checkCron(i.Schedule); err != nil {
		v.addf("iocs.schedule %q is not a valid cron spec: %v", i.Schedule, err)
	}
	v.oneOf("iocs.action", i.Action, IndicatorActions)
	v.oneOf("iocs.severity", i.Severity, Severities)
	if i.Action == "Audit" && !i.GenerateAlert {
		v.addf("iocs.action Audit requires iocs.generate_alert (an Audit indicator that raises no alert does nothing)")
	}
	v.oneOf("iocs.mode", i.Mode, SyncModes)
	v.oneOf("iocs.patterns", i.Patterns, PatternModes)
	if !(i.MaxDeleteFraction >= 0 && i.MaxDeleteFraction <= 1) {
		v.addf("iocs.max_delete_fraction must be between 0 and 1 (got %v)", i.MaxDeleteFraction)
	}
	if i.MaxObjectBytes < minObjectBytes {
		v.addf("iocs.max_object_bytes must be at least %d (got %d)", minObjectBytes, i.MaxObjectBytes)
	}
	if i.TenantLimit < 1 {
		v.addf("iocs.tenant_limit must be at least 1 (got %d)", i.TenantLimit)
	}
	if i.RunTimeout <= 0 {
		v.addf("iocs.run_timeout must be a positive duration (got %s)", i.RunTimeout)
	}
	if i.Workers < 0 {
		v.addf("iocs.workers must not be negative (got %d; 0: one per CPU)", i.Workers)
	}
	if i.SekoiaBaseURL != "" {
		v.httpsURL("iocs.sekoia_base_url", i.SekoiaBaseURL, false)
	}
	if i.ReportChannel != "" && !channelRE.MatchString(i.ReportChannel) {
		v.addf("iocs.report_channel must be a channel ID such as C0123ABCD (got %q)", i.ReportChannel)
	}
	c.validateTAXII(v)
}

// validateTAXII checks iocs.taxii when a URL is set (and its page size
// always). Plain http is allowed on loopback only (the emulator).
func (c *Config) validateTAXII(v *validator) {
	t := c.IOCs.TAXII
	if t.PageSize < 1 || t.PageSize > 10000 {
		v.addf("iocs.taxii.page_size must be between 1 and 10000 (got %d)", t.PageSize)
	}
	if t.URL == "" {
		return
	}
	v.httpsURL("iocs.taxii.url", t.URL, true)
	if t.Collection == "" {
		v.addf("iocs.taxii.collection is required with iocs.taxii.url (the collection ID)")
	} else if strings.ContainsAny(t.Collection, "/?#") {
		v.addf("iocs.taxii.collection must be a collection ID, not a path (got %q)", t.Collection)
	}
	if t.Token.IsSet() && (t.Username != "" || t.Password.IsSet()) {
		v.addf("iocs.taxii: set username and password (HTTP Basic) or token (Bearer), not both")
	}
	if t.Username != "" && !t.Password.IsSet() {
		v.addf("iocs.taxii.username needs iocs.taxii.password (or iocs.taxii.password_file)")
	}
}

func (c *Config) validateDefenderCreds(v *validator) {
	d := c.Defender
	switch {
	case d.TenantID == "":
		v.addf("defender.tenant_id is required (or AZURE_TENANT_ID)")
	case !tenantRE.MatchString(d.TenantID):
		v.addf("defender.tenant_id must be a tenant GUID or domain (got %q)", d.TenantID)
	case slices.Contains([]string{"common", "organizations", "consumers", "adfs"}, strings.ToLower(d.TenantID)):
		v.addf("defender.tenant_id %q cannot be used with client credentials: give the tenant GUID or domain", d.TenantID)
	}
	switch {
	case d.AppID == "":
		v.addf("defender.app_id is required (or AZURE_CLIENT_ID)")
	case !idRE.MatchString(d.AppID):
		v.addf("defender.app_id must be an application (client) ID (got %q)", d.AppID)
	}
	if !d.AppSecret.IsSet() {
		v.addf("defender.app_secret is required (or defender.app_secret_file, AZURE_CLIENT_SECRET, AZURE_CLIENT_SECRET_FILE)")
	}
}

func (c *Config) validateServe(v *validator) {
	s := c.Slack
	if !s.BotToken.IsSet() {
		v.addf("slack.bot_token is required (or slack.bot_token_file, SLACK_BOT_TOKEN)")
	}
	if !s.SocketMode() && !s.SigningSecret.IsSet() {
		v.addf("slack.signing_secret is required unless slack.app_token is set (or slack.signing_secret_file, SLACK_SIGNING_SECRET)")
	}
	if s.ApprovalChannel == "" {
		v.addf("slack.approval_channel is required")
	}
	if len(c.Approval.Approvers) == 0 {
		v.addf("approval.approvers must list at least one approver")
	}
}

func (c *Config) validateIOCsEnabled(v *validator) {
	i := c.IOCs
	switch {
	case i.STIXObjectsPath != "" && i.TAXII.URL != "":
		v.addf("iocs.stix_objects_path and iocs.taxii.url are both set: the feed is one or the other")
	case c.IOCs.Enabled && i.STIXObjectsPath == "" && i.TAXII.URL == "":
		v.addf("iocs.stix_objects_path is required when iocs.enabled is true (or iocs.taxii.url, for a TAXII 2.1 collection)")
	}
}

func firstDuplicate(ids []string) string {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return id
		}
		seen[id] = true
	}
	return ""
}

func onlyUsers(ids []string) bool {
	for _, id := range ids {
		if strings.HasPrefix(id, "S") {
			return false
		}
	}
	return true
}

// cronParser is robfig/cron's standard parser (5 fields plus @descriptors).
// It is stricter than the scheduler's (scheduler.ValidateSpec also takes a
// leading seconds field): every spec accepted here the scheduler accepts,
// not the reverse.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ValidateSchedule checks a cron spec for iocs.schedule: one the scheduler
// will accept, in the standard 5 fields or a descriptor, at least 1s apart.
func ValidateSchedule(spec string) error { return checkCron(spec) }

func checkCron(spec string) (err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return fmt.Errorf("empty spec")
	}
	// robfig/cron#554: a TZ prefix with nothing after it panics in v3.0.1.
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if !strings.Contains(spec, " ") {
			return fmt.Errorf("time zone prefix must be followed by a schedule")
		}
	}
	// robfig/cron rounds "@every -1h" up to one second instead of failing.
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Second {
			return fmt.Errorf("@every needs an interval of at least 1s")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unparsable spec")
		}
	}()
	_, err = cronParser.Parse(spec)
	return err
}

func actionList() string {
	names := actions.Names()
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// Warnings lists settings that are valid but will not work as an operator
// expects. validate-config prints them (exit status unchanged) and serve
// logs them at start.
func (c *Config) Warnings() []string {
	var w []string
	a := c.Approval
	// Groups can grow, so only a closed list of users is counted. A request
	// by an approver needs required_approvals approvers other than them.
	if !a.AllowSelfApproval && a.RequiredApprovals >= 1 && len(a.Approvers) > 0 && onlyUsers(a.Approvers) &&
		len(a.Approvers)-1 < a.RequiredApprovals {
		for _, id := range a.Approvers {
			if len(a.Requesters) == 0 || slices.Contains(a.Requesters, id) || !onlyUsers(a.Requesters) {
				w = append(w, fmt.Sprintf("approval.required_approvals (%d) cannot be met when an approver (such as %s) requests: "+
					"there are only %d other approver(s) and allow_self_approval is off, so such a request can only expire "+
					"(add approvers, lower required_approvals, or keep approvers out of approval.requesters)",
					a.RequiredApprovals, id, len(a.Approvers)-1))
				break
			}
		}
	}
	if i := c.IOCs; !i.Enabled && (i.STIXObjectsPath != "" || i.TAXII.URL != "") {
		w = append(w, "iocs.stix_objects_path (or iocs.taxii.url) is set but iocs.enabled is off: serve will not run the IOC sync, "+
			"neither on iocs.schedule nor on /defender iocs sync (push-iocs still works); "+
			"to turn it on set iocs.enabled: true (or DEFENDERBOT_IOCS_ENABLED=true)")
	}
	return w
}
