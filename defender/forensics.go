package defender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Machine action types of the forensic actions, as Defender reports them in
// MachineAction.Type.
const (
	ActionStopAndQuarantineFile       = "StopAndQuarantineFile"
	ActionCollectInvestigationPackage = "CollectInvestigationPackage"
)

type stopAndQuarantineBody struct {
	Comment string `json:"Comment"`
	Sha1    string `json:"Sha1"`
}

// ParseSHA1 checks that s is a SHA-1 hash (40 hex digits, any case,
// surrounding spaces ignored) and returns it lower-cased.
func ParseSHA1(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	if h == "" {
		return "", invalid("sha1", "is required")
	}
	if len(h) != 40 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", invalid("sha1", "%q is not a SHA-1 hash (40 hexadecimal digits)", s)
	}
	return h, nil
}

// StopAndQuarantineFile stops every process running the file with this
// SHA-1 on a device and quarantines the file. Microsoft refuses it on
// devices older than Windows 10 1703 and for Microsoft-signed files.
//
// API: POST /api/machines/{id}/StopAndQuarantineFile
func (c *Client) StopAndQuarantineFile(ctx context.Context, machineID, sha1, comment string) (*MachineAction, error) {
	h, err := ParseSHA1(sha1)
	if err != nil {
		return nil, err
	}
	return c.machineAction(ctx, machineID, comment, "StopAndQuarantineFile", ActionStopAndQuarantineFile,
		stopAndQuarantineBody{comment, h})
}

// CollectInvestigationPackage starts collecting a forensic package from a
// device. Defender refuses a second collection while one is running (400
// ActiveRequestAlreadyExists). Once the action has succeeded, GetPackageURI
// gives a short-lived download link.
//
// API: POST /api/machines/{id}/collectInvestigationPackage
func (c *Client) CollectInvestigationPackage(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.machineAction(ctx, machineID, comment, "collectInvestigationPackage", ActionCollectInvestigationPackage,
		commentBody{comment})
}

// GetPackageURI returns the short-lived download link of the investigation
// package that a succeeded CollectInvestigationPackage action collected.
// Defender answers 404 until the collection is done. The link gives access
// to forensic data: callers must not log it or post it where others can
// read it. Microsoft allows 2 calls a minute and 120 an hour.
//
// API: GET /api/machineactions/{id}/GetPackageUri
func (c *Client) GetPackageURI(ctx context.Context, actionID string) (string, error) {
	if err := validateID("action id", actionID); err != nil {
		return "", err
	}
	path := "/api/machineactions/" + url.PathEscape(actionID) + "/GetPackageUri"
	var body struct {
		Value *string `json:"value"`
	}
	if _, err := c.do(ctx, &call{api: APIPackageURI, method: "GET", path: path}, &body); err != nil {
		return "", err
	}
	if body.Value == nil {
		return "", fmt.Errorf("defender: GET %s: the response has no value", path)
	}
	// Microsoft's example wraps the link in escaped quotes.
	link := strings.TrimSpace(strings.Trim(strings.TrimSpace(*body.Value), `"`))
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		// The value is not echoed: it may be a credential-bearing link.
		return "", fmt.Errorf("defender: GET %s: the value is not an https:// link", path)
	}
	return link, nil
}

// ListMachineAlerts returns the alerts of one device. openOnly leaves out
// Resolved alerts. Defender answers 404 for an unknown device.
//
// API: GET /api/machines/{id}/alerts
func (c *Client) ListMachineAlerts(ctx context.Context, machineID string, openOnly bool) ([]Alert, error) {
	if err := validateID("machine id", machineID); err != nil {
		return nil, err
	}
	path := "/api/machines/" + url.PathEscape(machineID) + "/alerts"
	filter := ""
	if openOnly {
		filter = "status ne 'Resolved'"
	}
	raws, err := c.list(ctx, APIAlerts, path, filter, 0, 0, false)
	if err != nil {
		return nil, err
	}
	out := make([]Alert, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, fmt.Errorf("defender: GET %s: decoding item %d: %w", path, i, err)
		}
		out[i].Raw = r
	}
	return out, nil
}

// LatestMachineActions returns the newest n actions of one device (all when
// n is 0), newest first. Microsoft lists newest first but does not document
// an order, so the client sorts.
//
// API: GET /api/machineactions?$filter=machineId eq '{id}'
func (c *Client) LatestMachineActions(ctx context.Context, machineID string, n int) ([]MachineAction, error) {
	if n < 0 {
		return nil, invalid("n", "must not be negative")
	}
	actions, err := c.ListMachineActions(ctx, MachineActionListOptions{MachineID: machineID})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(actions, func(a, b MachineAction) int {
		return b.CreationDateTimeUTC.Compare(a.CreationDateTimeUTC)
	})
	if n > 0 && len(actions) > n {
		actions = actions[:n]
	}
	return actions, nil
}
