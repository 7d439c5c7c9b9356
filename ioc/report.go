package ioc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/defenderbot/defenderbot/defender"
)

// Report is the outcome of one run; it is stored as JSON in store.SyncRun.Summary.
type Report struct {
	Trigger   string    `json:"trigger"`
	Mode      string    `json:"mode"`
	DryRun    bool      `json:"dry_run,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// Read counts the STIX objects read (unreadable ones included).
	Read int `json:"read"`
	// Imported counts new indicators, Updated changed ones, Unchanged the
	// feed's indicators that needed no call.
	Imported  int `json:"imported"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Deleted   int `json:"deleted"`
	// Planned* are what the plan asked for (equal to the above on success;
	// the only figures in a dry run).
	PlannedImports int `json:"planned_imports"`
	PlannedDeletes int `json:"planned_deletes"`
	// Dropped counts the planned deletions of managed values that the
	// latest version of their object no longer yields (part of
	// PlannedDeletes).
	Dropped int `json:"dropped,omitempty"`
	// Retried counts the planned imports that re-send an indicator which
	// failed in an earlier run, from its stored payload.
	Retried int `json:"retried,omitempty"`
	// StaleDropped counts the records dropped because the value's
	// indicator in Defender is now someone else's (never overwritten or
	// deleted).
	StaleDropped int `json:"stale_dropped,omitempty"`
	// Compound counts the feed's live indicators taken from compound
	// patterns (AND, FOLLOWEDBY, qualifiers), imported or unchanged.
	Compound int `json:"compound,omitempty"`
	// Skipped counts objects or comparisons that gave no indicator, by reason.
	Skipped map[SkipReason]int `json:"skipped,omitempty"`
	// Failed counts indicators Defender refused (or calls that failed), by reason.
	Failed map[string]int `json:"failed,omitempty"`
	// LeftOut counts indicators not imported because of the tenant limit.
	LeftOut int `json:"left_out"`
	// SnapshotHeld is set when snapshot deletions were not made because the
	// feed was not entirely readable, or held no object at all.
	SnapshotHeld bool `json:"snapshot_held,omitempty"`
	// API calls made by the run, in total and per endpoint.
	APICalls    int           `json:"api_calls"`
	ImportCalls int           `json:"import_calls"`
	DeleteCalls int           `json:"delete_calls"`
	ListCalls   int           `json:"list_calls"`
	Duration    time.Duration `json:"duration_ns"`
	// Error is the full error, for logs and the stored report; Problem says
	// the same in a few plain words for Slack.
	Error   string `json:"error,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func (r *Report) fromPlan(p *plan) {
	r.Unchanged = p.unchanged
	r.PlannedImports = len(p.imports)
	r.PlannedDeletes = len(p.deletes)
	r.Retried = p.retried
	r.Dropped = p.dropped
	r.Compound = p.compound
	r.LeftOut = p.leftOutCount
	r.SnapshotHeld = p.snapshotHeld
	for k, n := range p.skipCounts {
		r.Skipped[k] += n
	}
}

func (r *Report) finish(c *countingAPI, d time.Duration, err error) {
	r.ImportCalls, r.DeleteCalls, r.ListCalls = c.imports, c.deletes, c.ls
	r.APICalls = r.ImportCalls + r.DeleteCalls + r.ListCalls
	r.Duration = d
	if err != nil {
		r.Error = err.Error()
		r.Problem = problemText(err)
	}
}

// problemText says in plain words what stopped a run and what to do, without
// the transport detail (token endpoint URLs, Azure AD trace IDs) that the
// full error carries into the logs.
func problemText(err error) string {
	var ae *defender.APIError
	switch {
	case errors.Is(err, defender.ErrAuthentication):
		return "could not obtain a Defender token from Azure AD: check defender.tenant_id, defender.app_id, the client secret (and its expiry) and defender.authority_host"
	case defender.IsUnauthorized(err):
		return "Defender did not accept defenderbot's token: check the Azure app registration and its admin consent"
	case defender.IsForbidden(err):
		return "Defender refused (403): the Azure app needs the Ti.ReadWrite or Ti.ReadWrite.All permission with admin consent"
	case defender.IsRateLimited(err):
		return "Defender kept throttling requests (429); the next run continues where this one stopped"
	case errors.Is(err, context.DeadlineExceeded):
		return "Defender did not answer in time; the next run continues where this one stopped"
	case errors.As(err, &ae):
		return fmt.Sprintf("Defender answered %d %s: %s; the next run continues where this one stopped", ae.StatusCode, ae.Code, ae.Message)
	}
	return err.Error()
}

func (r *Report) failedTotal() int {
	n := 0
	for _, v := range r.Failed {
		n += v
	}
	return n
}

// Text is a short human summary, for logs and Slack.
func (r *Report) Text() string {
	var b strings.Builder
	b.WriteString("IOC sync")
	if r.DryRun {
		b.WriteString(" (dry run)")
	}
	fmt.Fprintf(&b, ": %d objects read; ", r.Read)
	if r.DryRun {
		fmt.Fprintf(&b, "would import %d, delete %d; %d unchanged", r.PlannedImports, r.PlannedDeletes, r.Unchanged)
	} else {
		fmt.Fprintf(&b, "%d imported, %d updated, %d deleted, %d unchanged", r.Imported, r.Updated, r.Deleted, r.Unchanged)
	}
	if r.Dropped > 0 {
		fmt.Fprintf(&b, "; %d removed as new object versions dropped them", r.Dropped)
	}
	if r.Retried > 0 {
		fmt.Fprintf(&b, "; %d earlier failures retried", r.Retried)
	}
	if r.StaleDropped > 0 {
		fmt.Fprintf(&b, "; %d stale records dropped (the value is someone else's indicator now, left untouched)", r.StaleDropped)
	}
	if r.Compound > 0 {
		fmt.Fprintf(&b, "; %d indicators from compound patterns", r.Compound)
	}
	if s := countsText(r.Skipped); s != "" {
		b.WriteString("; skipped " + s)
	}
	if s := countsText(r.Failed); s != "" {
		b.WriteString("; FAILED " + s)
	}
	if r.LeftOut > 0 {
		fmt.Fprintf(&b, "; %d left out (tenant limit)", r.LeftOut)
	}
	switch {
	case r.SnapshotHeld && r.Read == 0:
		b.WriteString("; snapshot deletions held (feed empty)")
	case r.SnapshotHeld:
		b.WriteString("; snapshot deletions held (feed partly unreadable)")
	}
	fmt.Fprintf(&b, "; %d API calls in %s", r.APICalls, r.Duration.Round(time.Millisecond))
	switch {
	case r.Problem != "":
		b.WriteString("; error: " + r.Problem)
	case r.Error != "":
		b.WriteString("; error: " + r.Error)
	}
	return b.String()
}

// countsText renders "12 (7 reason a, 5 reason b)", largest first, at most 3 reasons.
func countsText[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return ""
	}
	type kv struct {
		k K
		v int
	}
	var all []kv
	total := 0
	for k, v := range m {
		all = append(all, kv{k, v})
		total += v
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.v != b.v {
			return b.v - a.v
		}
		return strings.Compare(string(a.k), string(b.k))
	})
	parts := make([]string, 0, 3)
	for i, e := range all {
		if i == 3 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%d %s", e.v, e.k))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
