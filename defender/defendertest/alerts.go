package defendertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

var alertFilterFields = []string{"id", "alertCreationTime", "lastUpdateTime", "assignedTo", "status", "severity",
	"category", "machineId", "computerDnsName", "classification", "determination"}

var (
	alertStatuses        = []string{"New", "InProgress", "Resolved"}
	alertClassifications = []string{"TruePositive", "InformationalExpectedActivity", "FalsePositive"}
	// Both spellings Microsoft documents are accepted (see defender_api.md §4.3).
	alertDeterminations = []string{"MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware", "Phishing",
		"UnwantedSoftware", "Other", "SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity",
		"ConfirmedUserActivity", "NotMalicious", "Clean", "InsufficientData"}
)

func asTypeError(err error, target **json.UnmarshalTypeError) bool { return errors.As(err, target) }

func (s *Server) listAlerts(r *http.Request, _ []string, _ []byte) response {
	items := make([]any, 0, len(s.state.alerts))
	for _, a := range s.state.alerts {
		items = append(items, copyAlert(a))
	}
	return s.listResponse(r, "Alerts", alertFilterFields, items)
}

func alertNotFound(id string) response {
	return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Alert %s was not found", id))
}

func (s *Server) getAlert(r *http.Request, p []string, _ []byte) response {
	a := s.alertLocked(p[0])
	if a == nil {
		return alertNotFound(p[0])
	}
	return entityResponse(http.StatusOK, metadata(r, "Alerts/$entity"), copyAlert(a))
}

type alertPatch struct {
	Status         *string `json:"status"`
	AssignedTo     *string `json:"assignedTo"`
	Classification *string `json:"classification"`
	Determination  *string `json:"determination"`
	Comment        *string `json:"comment"`
}

// patchAlert validates every property before changing anything.
func (s *Server) patchAlert(r *http.Request, p []string, body []byte) response {
	var b alertPatch
	if e := decodeObject(body, &b); e != nil {
		return *e
	}
	if b.Status == nil && b.AssignedTo == nil && b.Classification == nil && b.Determination == nil && b.Comment == nil {
		return errorResponse(http.StatusBadRequest, "InvalidRequestBody",
			"Request body is incorrect: set at least one of status, assignedTo, classification, determination, comment")
	}
	enum := func(name string, v *string, allowed []string) (string, *response) {
		if v == nil {
			return "", nil
		}
		c := enumValue(*v, allowed...)
		if c == "" {
			e := errorResponse(http.StatusBadRequest, "InvalidInput",
				fmt.Sprintf("Invalid input %s '%s' (allowed: %s)", name, *v, strings.Join(allowed, ", ")))
			return "", &e
		}
		return c, nil
	}
	status, e := enum("status", b.Status, alertStatuses)
	if e != nil {
		return *e
	}
	class, e := enum("classification", b.Classification, alertClassifications)
	if e != nil {
		return *e
	}
	det, e := enum("determination", b.Determination, alertDeterminations)
	if e != nil {
		return *e
	}
	if b.Comment != nil && strings.TrimSpace(*b.Comment) == "" {
		return errorResponse(http.StatusBadRequest, "InvalidInput", "Invalid input comment: it must not be empty")
	}
	a := s.alertLocked(p[0])
	if a == nil {
		return alertNotFound(p[0])
	}
	now := s.nowLocked()
	if status != "" {
		a.Status = status
	}
	if class != "" {
		a.Classification = &class
	}
	if det != "" {
		a.Determination = &det
	}
	if b.AssignedTo != nil {
		v := *b.AssignedTo
		a.AssignedTo = &v
	}
	if b.Comment != nil {
		a.Comments = append(a.Comments, AlertComment{Comment: *b.Comment, CreatedBy: AppDisplayName, CreatedTime: now})
	}
	a.LastUpdateTime = &now
	return entityResponse(http.StatusOK, metadata(r, "Alerts/$entity"), copyAlert(a))
}
