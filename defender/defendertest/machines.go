package defendertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

var machineFilterFields = []string{"computerDnsName", "id", "version", "aadDeviceId", "lastSeen", "exposureLevel",
	"onboardingStatus", "lastIpAddress", "healthStatus", "osPlatform", "riskScore"}

var actionFilterFields = []string{"id", "status", "machineId", "type", "requestor", "creationDateTimeUtc"}

func (s *Server) listMachines(r *http.Request, _ []string, _ []byte) response {
	items := make([]any, 0, len(s.state.machines))
	for _, m := range s.state.machines {
		items = append(items, *m)
	}
	return s.listResponse(r, "Machines", machineFilterFields, items)
}

func (s *Server) getMachine(r *http.Request, p []string, _ []byte) response {
	m := s.machineByIDOrNameLocked(p[0])
	if m == nil {
		return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Machine %s was not found", p[0]))
	}
	return entityResponse(http.StatusOK, metadata(r, "Machines/$entity"), *m)
}

// actionBody is the body of the machine action POSTs. encoding/json matches
// property names case-insensitively, as Defender tolerates.
type actionBody struct {
	Comment       *string `json:"Comment"`
	IsolationType *string `json:"IsolationType"`
	ScanType      *string `json:"ScanType"`
	Sha1          *string `json:"Sha1"`
}

// decodeObject decodes a JSON object body; a missing body, another JSON
// type or a wrong property type is InvalidRequestBody.
func decodeObject(body []byte, v any) *response {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" || trimmed[0] != '{' {
		resp := errorResponse(http.StatusBadRequest, "InvalidRequestBody", "Request body is incorrect: a JSON object is required")
		return &resp
	}
	if err := json.Unmarshal(body, v); err != nil {
		msg := "Request body is incorrect"
		var te *json.UnmarshalTypeError
		if asTypeError(err, &te) && te.Field != "" {
			msg = fmt.Sprintf("Request body is incorrect: invalid value for property %s", te.Field)
		}
		resp := errorResponse(http.StatusBadRequest, "InvalidRequestBody", msg)
		return &resp
	}
	return nil
}

// enumValue returns the canonical spelling of v among allowed (matched
// case-insensitively), or "".
func enumValue(v string, allowed ...string) string {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	return ""
}

func missing(param string) response {
	return errorResponse(http.StatusBadRequest, "MissingRequiredParameter", fmt.Sprintf("Parameter %s is missing", param))
}

// createAction handles POST /api/machines/{id}/{verb}; p = [machine id, action type].
func (s *Server) createAction(r *http.Request, p []string, body []byte) response {
	var b actionBody
	if e := decodeObject(body, &b); e != nil {
		return *e
	}
	if b.Comment == nil || strings.TrimSpace(*b.Comment) == "" {
		return missing("Comment")
	}
	typ := p[1]
	var scope string
	switch typ {
	case "Isolate":
		scope = "Full" // Microsoft's default when IsolationType is omitted
		if b.IsolationType != nil {
			scope = enumValue(*b.IsolationType, "Full", "Selective", "UnManagedDevice")
			if scope == "" {
				return errorResponse(http.StatusBadRequest, "InvalidRequestBody", fmt.Sprintf(
					"Request body is incorrect: invalid IsolationType '%s' (allowed: Full, Selective, UnManagedDevice)", *b.IsolationType))
			}
		}
	case "RunAntiVirusScan":
		if b.ScanType == nil || strings.TrimSpace(*b.ScanType) == "" {
			return missing("ScanType")
		}
		scope = enumValue(*b.ScanType, "Quick", "Full")
		if scope == "" {
			return errorResponse(http.StatusBadRequest, "InvalidRequestBody", fmt.Sprintf(
				"Request body is incorrect: invalid ScanType '%s' (allowed: Quick, Full)", *b.ScanType))
		}
	}
	var file *relatedFileInfo
	if typ == "StopAndQuarantineFile" {
		var e *response
		if file, e = sha1Param(b.Sha1); e != nil {
			return *e
		}
	}
	m := s.machineLocked(p[0])
	if m == nil {
		return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Machine %s was not found", p[0]))
	}
	if e := forensicPlatformCheck(typ, m); e != nil {
		return *e
	}
	for _, a := range s.state.actions {
		if a.Type != typ || !strings.EqualFold(a.MachineID, m.ID) || !sameFile(a, file) {
			continue
		}
		s.refreshLocked(a)
		if isFinal(a.Status) {
			continue
		}
		// A second collection while one runs is always refused.
		if s.cfg.duplicate == DuplicateReturnExisting && typ != "CollectInvestigationPackage" {
			return entityResponse(http.StatusCreated, metadata(r, "MachineActions/$entity"), copyAction(a))
		}
		return errorResponse(http.StatusBadRequest, "ActiveRequestAlreadyExists", "Action is already in progress")
	}
	now := s.nowLocked()
	a := &action{scope: scope, MachineAction: MachineAction{
		ID:                    s.guidLocked(),
		Type:                  typ,
		Requestor:             AppDisplayName,
		RequestorComment:      *b.Comment,
		Status:                "Pending",
		MachineID:             m.ID,
		ComputerDNSName:       m.ComputerDNSName,
		CreationDateTimeUTC:   now,
		LastUpdateDateTimeUTC: now,
		RequestSource:         "PublicApi",
		Commands:              []any{},
	}}
	if file != nil {
		a.RelatedFileInfo = *file
	}
	s.state.actions = append(s.state.actions, a)
	return entityResponse(http.StatusCreated, metadata(r, "MachineActions/$entity"), copyAction(a))
}

func actionNotFound(id string) response {
	return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Machine action %s was not found", id))
}

func (s *Server) getAction(r *http.Request, p []string, _ []byte) response {
	a := s.actionLocked(p[0])
	if a == nil {
		return actionNotFound(p[0])
	}
	s.refreshLocked(a)
	return entityResponse(http.StatusOK, metadata(r, "MachineActions/$entity"), copyAction(a))
}

func (s *Server) listActions(r *http.Request, _ []string, _ []byte) response {
	items := make([]any, 0, len(s.state.actions))
	for _, a := range s.state.actions {
		s.refreshLocked(a)
		items = append(items, copyAction(a))
	}
	return s.listResponse(r, "MachineActions", actionFilterFields, items)
}

// cancelAction cancels a Pending or InProgress action. Cancelling an action
// already in a final state answers 400 BadRequest (Microsoft's code for
// this case is not documented).
func (s *Server) cancelAction(r *http.Request, p []string, body []byte) response {
	var b actionBody
	if e := decodeObject(body, &b); e != nil {
		return *e
	}
	if b.Comment == nil || strings.TrimSpace(*b.Comment) == "" {
		return missing("Comment")
	}
	a := s.actionLocked(p[0])
	if a == nil {
		return actionNotFound(p[0])
	}
	s.refreshLocked(a)
	if isFinal(a.Status) {
		return errorResponse(http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Machine action %s cannot be cancelled: its status is already %s", a.ID, a.Status))
	}
	now := s.nowLocked()
	requestor, comment := AppDisplayName, *b.Comment
	a.Status = "Cancelled"
	a.CancellationRequestor = &requestor
	a.CancellationComment = &comment
	a.CancellationDateTimeUTC = &now
	a.LastUpdateDateTimeUTC = now
	return entityResponse(http.StatusOK, metadata(r, "MachineActions/$entity"), copyAction(a))
}
