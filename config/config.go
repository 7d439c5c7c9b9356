// Package config loads, overrides and validates defenderbot's configuration:
// a YAML file, then DEFENDERBOT_* and the usual Azure/Slack environment
// variables, then secrets read from files.
//
// It owns every default (Default, documented in config.example.yaml); the
// other packages take their values from it. It must not import bot, approval,
// store, handlers or cmd.
package config

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/graph"
	"github.com/defenderbot/defenderbot/taxii"
)

// Config is defenderbot's whole configuration. The yaml tags are the file's
// keys; every key can also be set from the environment (see Load).
type Config struct {
	Listen    string `yaml:"listen"`
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	// ReplicaID names this process in leases and logs when several replicas
	// share a store; empty means "<hostname>-<pid>".
	ReplicaID string `yaml:"replica_id"`
	// MemoryLimitMiB is the Go runtime's soft memory limit (runtime/debug.SetMemoryLimit) of serve
	// and push-iocs, in MiB; 0 leaves the runtime's own (none, or GOMEMLIMIT). GOMEMLIMIT, when
	// set, wins. The collector works harder as the heap nears it, rather than letting it grow to
	// twice what is live: an IOC sync of a large feed then stays within a small container.
	// push-iocs, which runs one sync and exits, collects only near it (GC percent off) unless
	// GOGC is set.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`

	Server   Server   `yaml:"server"`
	Defender Defender `yaml:"defender"`
	Slack    Slack    `yaml:"slack"`
	Approval Approval `yaml:"approval"`
	Store    Store    `yaml:"store"`
	IOCs     IOCs     `yaml:"iocs"`
	Alerts   Alerts   `yaml:"alerts"`
}

// Server holds the timeouts of the HTTP server on Listen (Slack's
// endpoints, /healthz, /readyz, /metrics): a slow or idle client cannot
// hold a connection for longer.
type Server struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds a graceful shutdown (in-flight requests, a
	// claimed execution, the running IOC sync); it must end before the
	// orchestrator's kill (Kubernetes' terminationGracePeriodSeconds).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Defender holds the Defender for Endpoint API and Azure AD app settings.
type Defender struct {
	BaseURL       string        `yaml:"base_url"`
	TenantID      string        `yaml:"tenant_id"`
	AppID         string        `yaml:"app_id"`
	AppSecret     Secret        `yaml:"app_secret"`
	AppSecretFile string        `yaml:"app_secret_file"`
	AuthorityHost string        `yaml:"authority_host"`
	Timeout       time.Duration `yaml:"timeout"`
	PollInterval  time.Duration `yaml:"poll_interval"`
	PollTimeout   time.Duration `yaml:"poll_timeout"`
	MaxRetries    int           `yaml:"max_retries"`
	// GraphBaseURL is Microsoft Graph's root (alerts_v2); national clouds
	// have their own host.
	GraphBaseURL string `yaml:"graph_base_url"`
	// AlertsAPI chooses where comment-alert and update-alert go: "legacy"
	// (Defender's /api/alerts) or "graph" (alerts_v2).
	AlertsAPI string `yaml:"alerts_api"`
}

// Slack holds the Slack app settings. With AppToken set the bot uses Socket
// Mode and needs no signing secret.
type Slack struct {
	BotToken          Secret `yaml:"bot_token"`
	BotTokenFile      string `yaml:"bot_token_file"`
	SigningSecret     Secret `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	AppToken          Secret `yaml:"app_token"`
	AppTokenFile      string `yaml:"app_token_file"`
	APIURL            string `yaml:"api_url"`
	ApprovalChannel   string `yaml:"approval_channel"`
	Command           string `yaml:"command"`
	// Timeout bounds one Web API call (its HTTP request and answer).
	Timeout time.Duration `yaml:"timeout"`
}

// SocketMode reports whether the bot connects over Socket Mode.
func (s Slack) SocketMode() bool { return s.AppToken != "" }

// Approval holds the two-person approval rules.
type Approval struct {
	// Approvers are Slack user IDs (U…/W…) or user-group IDs (S…).
	Approvers []string `yaml:"approvers"`
	// Requesters may request actions; empty means anyone.
	Requesters             []string      `yaml:"requesters"`
	AllowSelfApproval      bool          `yaml:"allow_self_approval"`
	RequiredApprovals      int           `yaml:"required_approvals"`
	TTL                    time.Duration `yaml:"ttl"`
	ActionsWithoutApproval []string      `yaml:"actions_without_approval"`
	// MaxBulk is how many machines one request may name
	// ("isolate ws-1,ws-2,… comment").
	MaxBulk int `yaml:"max_bulk"`
}

// Store selects the persistence backend.
type Store struct {
	Driver string `yaml:"driver"`
	// DSN may hold a database password, so it is a Secret.
	DSN     Secret `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
}

// IOCs configures the scheduled STIX to Defender indicator sync.
type IOCs struct {
	Enabled           bool    `yaml:"enabled"`
	STIXObjectsPath   string  `yaml:"stix_objects_path"`
	Schedule          string  `yaml:"schedule"`
	Action            string  `yaml:"action"`
	Severity          string  `yaml:"severity"`
	GenerateAlert     bool    `yaml:"generate_alert"`
	SekoiaBaseURL     string  `yaml:"sekoia_base_url"`
	Mode              string  `yaml:"mode"`
	Patterns          string  `yaml:"patterns"`
	MaxDeleteFraction float64 `yaml:"max_delete_fraction"`
	ReportChannel     string  `yaml:"report_channel"`
	// MaxObjectBytes caps the size of one STIX object of the feed: a larger one is skipped as
	// unreadable, so that one object cannot exhaust memory.
	MaxObjectBytes int `yaml:"max_object_bytes"`
	// TenantLimit is how many active indicators Defender allows the tenant;
	// a feed with more keeps the newest.
	TenantLimit int `yaml:"tenant_limit"`
	// Workers is how many goroutines decode and convert the feed's objects;
	// 0 means one per CPU the process may use (GOMAXPROCS).
	Workers int `yaml:"workers"`
	// RunTimeout bounds one sync run (scheduled, from Slack or push-iocs):
	// a hung run is cancelled rather than holding the sync lease for good.
	RunTimeout time.Duration `yaml:"run_timeout"`
	// TAXII reads the feed from a TAXII 2.1 collection instead of
	// STIXObjectsPath (exactly one of the two when the sync is enabled).
	TAXII TAXII `yaml:"taxii"`
}

// TAXII locates a TAXII 2.1 collection and how to authenticate to it:
// Username and Password (HTTP Basic) or Token (Bearer).
type TAXII struct {
	// URL is the API root, e.g. https://taxii.example/api1/.
	URL          string `yaml:"url"`
	Collection   string `yaml:"collection"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	Token        Secret `yaml:"token"`
	TokenFile    string `yaml:"token_file"`
	// PageSize is the limit asked of the server per page.
	PageSize int `yaml:"page_size"`
}

// Alerts configures the Defender alert feed (Graph alerts_v2) into Slack.
type Alerts struct {
	Enabled      bool          `yaml:"enabled"`
	Channel      string        `yaml:"channel"`
	MinSeverity  string        `yaml:"min_severity"`
	PollInterval time.Duration `yaml:"poll_interval"`
	// Backfill is how far back the very first poll looks.
	Backfill time.Duration `yaml:"backfill"`
	// ServiceSources keeps only alerts from these products; empty: all.
	ServiceSources []string `yaml:"service_sources"`
}

// Values of defender.alerts_api.
const (
	AlertsAPILegacy = "legacy"
	AlertsAPIGraph  = "graph"
)

// approval.max_bulk: its default, and its ceiling (every machine of a
// request is listed on its one approval message, within Slack's limits).
const (
	DefaultMaxBulk = 20
	MaxMaxBulk     = 50
)

// Default values, also documented in config.example.yaml.
const (
	DefaultDefenderBaseURL = "https://api.securitycenter.microsoft.com"
	DefaultAuthorityHost   = "https://login.microsoftonline.com"
	DefaultGraphBaseURL    = "https://graph.microsoft.com"
	DefaultSlackAPIURL     = "https://slack.com/api/"
	// DefaultMemoryLimitMiB is memory_limit_mib's default: with it an IOC sync of a
	// 1,000,000-object feed peaks under 100 MB of RSS (scripts/bench-iocs), and serve's own heap
	// is far below it.
	DefaultMemoryLimitMiB = 64
	// DefaultMaxObjectBytes is iocs.max_object_bytes' default: 1 MiB, some thousand times a real
	// indicator object.
	DefaultMaxObjectBytes = 1 << 20
	// DefaultTenantLimit is iocs.tenant_limit's default: Defender's documented
	// limit of 15,000 active indicators per tenant.
	DefaultTenantLimit = 15000
	// DefaultIOCRunTimeout is iocs.run_timeout's default: far above a
	// snapshot of a tenant's 15,000 indicators paced at Microsoft's limits.
	DefaultIOCRunTimeout = 6 * time.Hour
)

// Built-in values with no configuration key. The packages that use them
// have no defaults of their own; these are their only definitions (the
// README and config.example.yaml quote them, and a test keeps the quotes
// in step).
const (
	// MaxBackoff caps one wait between two attempts of a Defender or Graph
	// call; a longer Retry-After is returned as the call's error.
	MaxBackoff = time.Minute
	// GraphPerMinute paces Graph calls at its documented limit for alerts
	// (150 requests a minute per app and tenant).
	GraphPerMinute = 150
	// ContextWait is how long an approval card waits for the machine's
	// context before it is posted; what comes later fills it in by an update.
	ContextWait = 2 * time.Second
	// StaleAfter marks a machine Defender has not seen for longer as stale
	// on the approval card.
	StaleAfter = 7 * 24 * time.Hour
	// LookupTimeout bounds each of the approval card's look-ups (device,
	// open alerts, latest actions); one that takes longer reads "unavailable".
	LookupTimeout = 20 * time.Second
	// LatestActions is how many of the machine's latest actions the card
	// reads (what is running, isolated or restricted).
	LatestActions = 10
	// CardAlerts is how many of the machine's open alerts the card lists;
	// the others are counted ("and 4 more").
	CardAlerts = 3
	// BulkPace spaces the Defender calls of a bulk request (one per
	// machine): Defender allows 100 machine actions a minute.
	BulkPace = time.Second
	// ExecuteTimeout bounds one approved execution on one machine (the
	// Defender call with its retries, recording the outcome, the
	// notifications); BulkCallTimeout one machine's part of a bulk one.
	ExecuteTimeout  = 3 * time.Minute
	BulkCallTimeout = time.Minute
	// ProgressEvery is the least time between two updates of a bulk
	// request's progress table: Slack allows about one chat.update a second
	// per channel, and the card and thread share it (the final state is
	// sent at once).
	ProgressEvery = 3 * time.Second
	// AlertsOverlap is how far each alert poll reaches back before where
	// the last one ended: Graph can list an alert a little after its
	// createdDateTime, and the claims make seeing an alert twice harmless.
	AlertsOverlap = 10 * time.Minute
	// TAXIITimeout bounds each attempt of a TAXII request, body included;
	// TAXIIMaxRetries bounds its retries; TAXIIMaxWait caps one wait between
	// attempts (a longer Retry-After ends the run); TAXIIMaxPageBytes caps
	// one page's body (a page is held whole).
	TAXIITimeout      = time.Minute
	TAXIIMaxRetries   = 5
	TAXIIMaxWait      = 5 * time.Minute
	TAXIIMaxPageBytes = 256 << 20
	// IOCLeaseTTL and IOCLeaseRenewEvery: a sync run renews its lease every
	// IOCLeaseRenewEvery, so the lease of a run that died (a killed process,
	// a lost node) lapses within IOCLeaseTTL and another replica, or the
	// restarted process under its new name, takes the sync over within 2
	// minutes.
	IOCLeaseTTL        = 90 * time.Second
	IOCLeaseRenewEvery = 30 * time.Second
	// SweepEvery is how often the approval core expires overdue requests
	// and scans for work a dead replica left.
	SweepEvery = time.Minute
	// GroupCacheTTL is how long the bot keeps a Slack user group's members
	// before it lists them again (usergroups.users.list is Tier 2).
	GroupCacheTTL = 5 * time.Minute
	// ResponseURLTimeout bounds one post to a slash command's response_url.
	ResponseURLTimeout = 10 * time.Second
	// SlackTaskTimeout bounds the work a Slack request starts once it is
	// acknowledged (resolving the machine, creating the request and posting
	// its card, recording a decision or an undo). It is defenderbot's own
	// bound, not Slack's (a response_url stays valid for 30 minutes): the
	// Defender call and its follow-up run under their own limits.
	SlackTaskTimeout = 2 * time.Minute
	// UndoClaimTTL is how long an undo claim whose inverse request was never
	// created (its replica died in between) keeps another undo of the same
	// request out. Not shorter than SlackTaskTimeout, which bounds a live
	// undo's creation.
	UndoClaimTTL = 2 * time.Minute
	// SlackAttempts bounds the attempts of one Slack call answered 429;
	// SlackMaxWait caps one Retry-After wait, so a stuck call cannot hold a
	// goroutine for Slack's default 60 s.
	SlackAttempts = 3
	SlackMaxWait  = 30 * time.Second
	// SlackMaxBodyBytes caps a Slack request body; SlackMaxEventBodyBytes an
	// Events API body (an app_home_opened event carries the whole Home view
	// last published, which Slack allows up to 250 kB).
	SlackMaxBodyBytes      = 64 << 10
	SlackMaxEventBodyBytes = 512 << 10
	// SlackReplayTTL is how long a Slack request's fingerprint is kept to
	// refuse its replay: the whole ±5 minute window its signature verifies
	// in, and a minute more (handlers refuses less).
	SlackReplayTTL = 11 * time.Minute
	// SlackAckTimeout bounds the synchronous part of a Slack request, so its
	// acknowledgement stays inside Slack's 3 s budget.
	SlackAckTimeout = 2500 * time.Millisecond
	// ReadyTimeout bounds each check of /readyz.
	ReadyTimeout = 3 * time.Second
)

// Client is the Defender API client's configuration.
func (d Defender) Client() defender.Config {
	return defender.Config{
		BaseURL:       d.BaseURL,
		AuthorityHost: d.AuthorityHost,
		TenantID:      d.TenantID,
		ClientID:      d.AppID,
		ClientSecret:  d.AppSecret.Value(),
		Scope:         defender.Scope,
		Timeout:       d.Timeout,
		MaxRetries:    d.MaxRetries,
		MaxBackoff:    MaxBackoff,
	}
}

// Client is the TAXII client's configuration.
func (t TAXII) Client() taxii.Config {
	return taxii.Config{APIRoot: t.URL, Username: t.Username, Password: t.Password.Value(), Token: t.Token.Value(),
		Timeout: TAXIITimeout, MaxRetries: TAXIIMaxRetries, MaxWait: TAXIIMaxWait, MaxPageBytes: TAXIIMaxPageBytes}
}

// GraphClient is the Microsoft Graph alerts client's configuration.
func (d Defender) GraphClient() graph.Config {
	return graph.Config{BaseURL: d.GraphBaseURL, Timeout: d.Timeout, MaxRetries: d.MaxRetries,
		MaxBackoff: MaxBackoff, PerMinute: GraphPerMinute}
}

// DefaultResponseURLHosts are Slack's response_url hosts.
func DefaultResponseURLHosts() []string {
	return []string{"hooks.slack.com", "hooks.slack-gov.com"}
}

// ResponseURLHosts are the hosts a slash command's response_url may point
// at: Slack's, plus the host of an api_url that is not Slack's own (an
// emulator or proxy, which then also serves response_url).
func (s Slack) ResponseURLHosts() []string {
	hosts := DefaultResponseURLHosts()
	if u, err := url.Parse(s.APIURL); err == nil && u.Host != "" && u.Hostname() != "slack.com" && u.Hostname() != "slack-gov.com" {
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// Default returns the configuration used when nothing is set.
func Default() *Config {
	return &Config{
		Listen:         ":8080",
		LogLevel:       "info",
		LogFormat:      "json",
		MemoryLimitMiB: DefaultMemoryLimitMiB,
		Server: Server{
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			ShutdownTimeout:   25 * time.Second,
		},
		Defender: Defender{
			BaseURL:       DefaultDefenderBaseURL,
			AuthorityHost: DefaultAuthorityHost,
			Timeout:       30 * time.Second,
			PollInterval:  15 * time.Second,
			PollTimeout:   30 * time.Minute,
			MaxRetries:    5,
			GraphBaseURL:  DefaultGraphBaseURL,
			AlertsAPI:     AlertsAPILegacy,
		},
		Slack: Slack{
			APIURL:  DefaultSlackAPIURL,
			Command: "/defender",
			Timeout: 15 * time.Second,
		},
		Approval: Approval{
			Approvers:              []string{},
			Requesters:             []string{},
			RequiredApprovals:      1,
			TTL:                    time.Hour,
			ActionsWithoutApproval: []string{"get-action"},
			MaxBulk:                DefaultMaxBulk,
		},
		Store: Store{
			Driver: "sqlite",
			DSN:    "defenderbot.db",
		},
		IOCs: IOCs{
			Schedule:          "@every 1h",
			Action:            "Block",
			Severity:          "Medium",
			GenerateAlert:     true,
			Mode:              "incremental",
			Patterns:          "all",
			MaxDeleteFraction: 0.2,
			MaxObjectBytes:    DefaultMaxObjectBytes,
			TenantLimit:       DefaultTenantLimit,
			RunTimeout:        DefaultIOCRunTimeout,
			TAXII:             TAXII{PageSize: 1000},
		},
		Alerts: Alerts{
			MinSeverity:    graph.SeverityMedium,
			PollInterval:   time.Minute,
			Backfill:       time.Hour,
			ServiceSources: []string{},
		},
	}
}

// Replica returns ReplicaID, or "<hostname>-<pid>" when it is empty, so that
// leases taken by different processes never share an owner name.
func (c *Config) Replica() string {
	if c.ReplicaID != "" {
		return c.ReplicaID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "defenderbot"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
