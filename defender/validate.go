package defender

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxIDLen bounds IDs and names put in a URL path or filter.
const maxIDLen = 256

// IDProblem is the one check of an ID (machine, machine action, alert) put
// in a URL path or filter: it returns "" for a usable ID, else what is wrong
// with it ("must not contain '/'"), rejecting anything that could change the
// meaning of the URL (path traversal, query or fragment injection, escapes).
// The action registry checks arguments with it; the client's guard too.
func IDProblem(id string) string {
	if len(id) > maxIDLen {
		return fmt.Sprintf("is longer than %d characters", maxIDLen)
	}
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	if strings.Contains(id, "..") {
		return `must not contain ".."`
	}
	for _, r := range id {
		switch {
		case r == '/' || r == '\\' || r == '?' || r == '#' || r == '%' || r == '&':
			return fmt.Sprintf("must not contain %q", r)
		case unicode.IsControl(r) || unicode.IsSpace(r):
			return "must not contain spaces or control characters"
		}
	}
	return ""
}

// TextProblem is the one check of free text sent to Defender (comments,
// owners, indicator values): "" for valid UTF-8 with no control characters
// other than line breaks and tabs, else what is wrong.
func TextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "must not contain control characters"
		}
	}
	return ""
}

// validateID is the client's guard on an ID (required, then IDProblem).
func validateID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	if p := IDProblem(id); p != "" {
		return invalid(field, "%s", p)
	}
	return nil
}

// validateText is the client's guard on free text (TextProblem).
func validateText(field, s string, required bool) error {
	if strings.TrimSpace(s) == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if p := TextProblem(s); p != "" {
		return invalid(field, "%s", p)
	}
	return nil
}

// FoldEnum lower-cases s and drops separators so "in progress", "In-Progress"
// and "inprogress" compare equal: user input matches either API's spelling
// of an enum.
func FoldEnum(s string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch r {
		case ' ', '-', '_', ',', '.':
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// lookup maps user input onto one canonical value of a closed set.
func lookup[T ~string](field, s string, aliases map[string]T, allowed []T) (T, error) {
	if v, ok := aliases[FoldEnum(s)]; ok {
		return v, nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	if strings.TrimSpace(s) == "" {
		return "", invalid(field, "is required (allowed: %s)", strings.Join(names, ", "))
	}
	return "", invalid(field, "%q is not allowed (allowed: %s)", s, strings.Join(names, ", "))
}

// ParseIsolationType maps full, selective and unmanaged/unmanageddevice
// (any case) onto the value Microsoft expects.
func ParseIsolationType(s string) (IsolationType, error) {
	return lookup("isolation type", s, map[string]IsolationType{
		"full":            IsolationFull,
		"selective":       IsolationSelective,
		"unmanaged":       IsolationUnManagedDevice,
		"unmanageddevice": IsolationUnManagedDevice,
	}, []IsolationType{IsolationFull, IsolationSelective, IsolationUnManagedDevice})
}

// ParseScanType maps quick or full (any case) onto the value Microsoft expects.
func ParseScanType(s string) (ScanType, error) {
	return lookup("scan type", s, map[string]ScanType{
		"quick": ScanQuick,
		"full":  ScanFull,
	}, []ScanType{ScanQuick, ScanFull})
}

// ParseAlertStatus maps new, inprogress ("in progress", "in_progress") and
// resolved onto the value Microsoft expects.
func ParseAlertStatus(s string) (AlertStatus, error) {
	return lookup("status", s, map[string]AlertStatus{
		"new":        AlertNew,
		"inprogress": AlertInProgress,
		"resolved":   AlertResolved,
	}, []AlertStatus{AlertNew, AlertInProgress, AlertResolved})
}

// Alert classifications accepted by PATCH /api/alerts/{id}.
const (
	ClassificationTruePositive                  = "TruePositive"
	ClassificationInformationalExpectedActivity = "InformationalExpectedActivity"
	ClassificationFalsePositive                 = "FalsePositive"
)

// ParseClassification maps a classification (any case; "Informational,
// expected activity" as written in some docs is accepted) onto the value
// Microsoft expects.
func ParseClassification(s string) (string, error) {
	return lookup("classification", s, map[string]string{
		"truepositive":                  ClassificationTruePositive,
		"informationalexpectedactivity": ClassificationInformationalExpectedActivity,
		"falsepositive":                 ClassificationFalsePositive,
	}, []string{ClassificationTruePositive, ClassificationInformationalExpectedActivity, ClassificationFalsePositive})
}

// determinationsFor lists the determinations Microsoft accepts with a
// canonical classification. Both documented spellings are kept
// (ConfirmedActivity and ConfirmedUserActivity, NotMalicious and Clean): the
// docs disagree.
func determinationsFor(classification string) []string {
	switch classification {
	case ClassificationTruePositive:
		return []string{"MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware",
			"Phishing", "UnwantedSoftware", "Other"}
	case ClassificationInformationalExpectedActivity:
		return []string{"SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity", "ConfirmedUserActivity", "Other"}
	case ClassificationFalsePositive:
		return []string{"NotMalicious", "Clean", "InsufficientData", "Other"}
	}
	return nil
}

// ParseDetermination checks that determination is valid for classification
// (both any case) and returns the determination in Microsoft's spelling.
func ParseDetermination(classification, determination string) (string, error) {
	if strings.TrimSpace(classification) == "" {
		return "", invalid("determination", "requires a classification (%s, %s or %s)",
			ClassificationTruePositive, ClassificationInformationalExpectedActivity, ClassificationFalsePositive)
	}
	cls, err := ParseClassification(classification)
	if err != nil {
		return "", err
	}
	allowed := determinationsFor(cls)
	aliases := make(map[string]string, len(allowed))
	for _, d := range allowed {
		aliases[FoldEnum(d)] = d
	}
	if d, ok := aliases[FoldEnum(determination)]; ok {
		return d, nil
	}
	field := "determination"
	if strings.TrimSpace(determination) == "" {
		return "", invalid(field, "is required (allowed with %s: %s)", cls, strings.Join(allowed, ", "))
	}
	return "", invalid(field, "%q is not allowed with classification %s (allowed: %s)",
		determination, cls, strings.Join(allowed, ", "))
}

// validIndicatorTypes, validIndicatorActions and validSeverities are the
// closed sets of the indicator API. The actions and severities are the one
// list that config and ioc check their settings against (IndicatorActions,
// IndicatorSeverities).
var (
	validIndicatorTypes = []IndicatorType{
		IndicatorFileSha1, IndicatorFileSha256, IndicatorFileMd5, IndicatorCertificateThumbprint,
		IndicatorIPAddress, IndicatorDomainName, IndicatorURL,
	}
	validIndicatorActions = []string{"Warn", "Block", "Audit", "Alert", "AlertAndBlock", "BlockAndRemediate", "Allowed"}
	validSeverities       = []string{"Informational", "Low", "Medium", "High"}
	validActionTypes      = []string{
		"RunAntiVirusScan", "Offboard", "LiveResponse", "CollectInvestigationPackage", "Isolate",
		"Unisolate", "StopAndQuarantineFile", "RestrictCodeExecution", "UnrestrictCodeExecution",
	}
	validActionStatuses = []ActionStatus{
		StatusPending, StatusInProgress, StatusSucceeded, StatusFailed, StatusTimeOut, StatusCancelled,
	}
)

// IndicatorActions returns the indicator actions the import API accepts, in
// Microsoft's spelling (a fresh slice: callers may keep or change it).
func IndicatorActions() []string { return slices.Clone(validIndicatorActions) }

// IndicatorSeverities returns the indicator severities the import API
// accepts, in Microsoft's spelling (a fresh slice).
func IndicatorSeverities() []string { return slices.Clone(validSeverities) }

func aliasesOf[T ~string](vals []T) map[string]T {
	m := make(map[string]T, len(vals))
	for _, v := range vals {
		m[FoldEnum(string(v))] = v
	}
	return m
}

// oneOf checks that s is exactly one of vals (Defender's bodies are
// case-sensitive, so the typed values must already be canonical).
func oneOf[T ~string](field string, s T, vals []T) error {
	for _, v := range vals {
		if s == v {
			return nil
		}
	}
	names := make([]string, len(vals))
	for i, v := range vals {
		names[i] = string(v)
	}
	if s == "" {
		return invalid(field, "is required (allowed: %s)", strings.Join(names, ", "))
	}
	return invalid(field, "%q is not allowed (allowed: %s)", string(s), strings.Join(names, ", "))
}
