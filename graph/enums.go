package graph

import (
	"strings"

	"github.com/defenderbot/defenderbot/defender"
)

// Alert statuses, classifications and severities in Graph's spelling.
const (
	StatusNew        = "new"
	StatusInProgress = "inProgress"
	StatusResolved   = "resolved"

	ClassificationTruePositive                  = "truePositive"
	ClassificationFalsePositive                 = "falsePositive"
	ClassificationInformationalExpectedActivity = "informationalExpectedActivity"

	SeverityInformational = "informational"
	SeverityLow           = "low"
	SeverityMedium        = "medium"
	SeverityHigh          = "high"
)

// Writable enum values (PATCH). Determinations list both tables of the
// reference: the PATCH table and the resource table disagree.
var (
	statuses        = []string{StatusNew, StatusInProgress, StatusResolved}
	classifications = []string{ClassificationTruePositive, ClassificationFalsePositive, ClassificationInformationalExpectedActivity}
	determinations  = []string{"unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware",
		"other", "multiStagedAttack", "compromisedUser", "phishing", "maliciousUserActivity", "clean",
		"insufficientData", "confirmedUserActivity", "lineOfBusinessApplication",
		"compromisedAccount", "notMalicious", "notEnoughDataToValidate", "confirmedActivity"}
	// severities in increasing order.
	severities = []string{SeverityInformational, SeverityLow, SeverityMedium, SeverityHigh}
	// ServiceSources are the documented serviceSource values.
	serviceSources = []string{"microsoftDefenderForEndpoint", "microsoftDefenderForIdentity",
		"microsoftDefenderForCloudApps", "microsoftDefenderForOffice365", "microsoft365Defender",
		"azureAdIdentityProtection", "microsoftAppGovernance", "dataLossPrevention", "microsoftDefenderForCloud"}
)

// lookup maps s (any case, separators ignored: "In Progress", "InProgress")
// onto one of allowed.
func lookup(field, s string, allowed []string) (string, error) {
	f := defender.FoldEnum(s)
	for _, a := range allowed {
		if defender.FoldEnum(a) == f && f != "" {
			return a, nil
		}
	}
	if strings.TrimSpace(s) == "" {
		return "", invalid(field, "is required (allowed: %s)", strings.Join(allowed, ", "))
	}
	return "", invalid(field, "%q is not allowed (allowed: %s)", s, strings.Join(allowed, ", "))
}

// ParseStatus maps new, inProgress or resolved in either API's spelling
// onto Graph's.
func ParseStatus(s string) (string, error) { return lookup("status", s, statuses) }

// ParseClassification maps truePositive, falsePositive or
// informationalExpectedActivity (either spelling) onto Graph's.
func ParseClassification(s string) (string, error) {
	return lookup("classification", s, classifications)
}

// ParseDetermination maps a determination (either spelling) onto Graph's.
func ParseDetermination(s string) (string, error) {
	return lookup("determination", s, determinations)
}

// ParseSeverity maps informational, low, medium or high (any case).
func ParseSeverity(s string) (string, error) { return lookup("severity", s, severities) }

// ParseServiceSource maps a documented serviceSource (any case).
func ParseServiceSource(s string) (string, error) {
	return lookup("service source", s, serviceSources)
}

// Severities returns the severities in increasing order.
func Severities() []string { return append([]string(nil), severities...) }

// ServiceSources returns the documented service sources.
func ServiceSources() []string { return append([]string(nil), serviceSources...) }

// SeverityRank orders severities: informational 0 … high 3; unknown and
// anything else -1.
func SeverityRank(s string) int {
	for i, v := range severities {
		if strings.EqualFold(v, s) {
			return i
		}
	}
	return -1
}
