package defendertest

import (
	"net/http"
	"time"
)

// Identity of the emulated tenant and app registration. The emulator accepts
// only these credentials on its token endpoint.
const (
	TenantID     = "00000000-0000-0000-0000-0000000000aa"
	ClientID     = "11111111-1111-1111-1111-111111111111"
	ClientSecret = "emulator-secret"
	// AppDisplayName is the app registration's name: Defender reports it as
	// the requestor of machine actions and the author of alert comments.
	AppDisplayName = "defenderbot emulator app"
	// Scope is the scope a client must request to get WindowsDefenderATP roles.
	Scope = "https://api.securitycenter.microsoft.com/.default"
)

// Application roles the emulator knows (Microsoft's names).
const (
	RoleMachineReadAll           = "Machine.Read.All"
	RoleMachineReadWriteAll      = "Machine.ReadWrite.All"
	RoleMachineIsolate           = "Machine.Isolate"
	RoleMachineRestrictExecution = "Machine.RestrictExecution"
	RoleMachineScan              = "Machine.Scan"
	RoleMachineCollectForensics  = "Machine.CollectForensics"
	RoleMachineStopAndQuarantine = "Machine.StopAndQuarantine"
	RoleAlertReadAll             = "Alert.Read.All"
	RoleAlertReadWriteAll        = "Alert.ReadWrite.All"
	RoleTiReadWrite              = "Ti.ReadWrite"
	RoleTiReadWriteAll           = "Ti.ReadWrite.All"
)

// DefaultRoles returns every role the emulator grants by default: all the
// roles defenderbot needs.
func DefaultRoles() []string {
	return []string{
		RoleMachineReadAll, RoleMachineReadWriteAll, RoleMachineIsolate, RoleMachineRestrictExecution,
		RoleMachineScan, RoleMachineCollectForensics, RoleMachineStopAndQuarantine, RoleAlertReadAll, RoleAlertReadWriteAll, RoleTiReadWriteAll,
	}
}

// API names, as used for rate limits and Fault.Path matching. They equal the
// defender client's API names (without importing the client).
const (
	APIMachineActions  = "machineactions"
	APIMachines        = "machines"
	APIAlerts          = "alerts"
	APIIndicators      = "indicators"
	APIIndicatorImport = "indicators_import"
	APIIndicatorDelete = "indicators_batchdelete"
	APIPackageURI      = "machineactions_packageuri"
	APIToken           = "token"
)

// Machine is the emulator's copy of Microsoft's Machine entity.
type Machine struct {
	ID                     string    `json:"id"`
	ComputerDNSName        string    `json:"computerDnsName"`
	FirstSeen              time.Time `json:"firstSeen"`
	LastSeen               time.Time `json:"lastSeen"`
	OSPlatform             string    `json:"osPlatform"`
	Version                string    `json:"version"`
	LastIPAddress          string    `json:"lastIpAddress"`
	LastExternalIPAddress  string    `json:"lastExternalIpAddress"`
	HealthStatus           string    `json:"healthStatus"`
	OnboardingStatus       string    `json:"onboardingStatus"`
	RiskScore              string    `json:"riskScore"`
	ExposureLevel          string    `json:"exposureLevel"`
	RBACGroupName          *string   `json:"rbacGroupName"`
	RBACGroupID            *int64    `json:"rbacGroupId"`
	OSBuild                *int64    `json:"osBuild"`
	MachineTags            []string  `json:"machineTags"`
	AADDeviceID            *string   `json:"aadDeviceId"`
	IsPotentialDuplication bool      `json:"isPotentialDuplication"`
	MergedIntoMachineID    *string   `json:"mergedIntoMachineId"`
}

// AlertComment is one entry of an alert's comments.
type AlertComment struct {
	Comment     string    `json:"comment"`
	CreatedBy   string    `json:"createdBy"`
	CreatedTime time.Time `json:"createdTime"`
}

// Alert is the emulator's copy of Microsoft's Alert entity.
type Alert struct {
	ID                string         `json:"id"`
	Title             string         `json:"title"`
	Description       string         `json:"description"`
	Status            string         `json:"status"`
	Severity          string         `json:"severity"`
	Classification    *string        `json:"classification"`
	Determination     *string        `json:"determination"`
	Category          string         `json:"category"`
	AssignedTo        *string        `json:"assignedTo"`
	MachineID         string         `json:"machineId"`
	ComputerDNSName   string         `json:"computerDnsName"`
	AlertCreationTime time.Time      `json:"alertCreationTime"`
	LastUpdateTime    *time.Time     `json:"lastUpdateTime"`
	Comments          []AlertComment `json:"comments"`
}

// Indicator is the emulator's copy of Microsoft's Indicator entity.
type Indicator struct {
	ID                      string     `json:"id"`
	IndicatorValue          string     `json:"indicatorValue"`
	IndicatorType           string     `json:"indicatorType"`
	Action                  string     `json:"action"`
	Application             string     `json:"application"`
	Title                   string     `json:"title"`
	Description             string     `json:"description"`
	ExpirationTime          *time.Time `json:"expirationTime"`
	Severity                string     `json:"severity"`
	RecommendedActions      string     `json:"recommendedActions"`
	RBACGroupNames          []string   `json:"rbacGroupNames"`
	RBACGroupIDs            []string   `json:"rbacGroupIds"`
	GenerateAlert           bool       `json:"generateAlert"`
	ExternalID              string     `json:"externalId"`
	SourceType              string     `json:"sourceType"`
	CreatedBy               string     `json:"createdBy"`
	CreatedByDisplayName    string     `json:"createdByDisplayName"`
	CreatedBySource         string     `json:"createdBySource"`
	CreationTimeDateTimeUTC time.Time  `json:"creationTimeDateTimeUtc"`
	LastUpdateTime          time.Time  `json:"lastUpdateTime"`
	LastUpdatedBy           string     `json:"lastUpdatedBy"`
	Source                  string     `json:"source"`
}

// MachineAction is the emulator's copy of Microsoft's MachineAction entity,
// with every property of a real response.
type MachineAction struct {
	ID                      string     `json:"id"`
	Type                    string     `json:"type"`
	Title                   *string    `json:"title"`
	Requestor               string     `json:"requestor"`
	RequestorComment        string     `json:"requestorComment"`
	Status                  string     `json:"status"`
	MachineID               string     `json:"machineId"`
	ComputerDNSName         string     `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time  `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time  `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string    `json:"cancellationRequestor"`
	CancellationComment     *string    `json:"cancellationComment"`
	CancellationDateTimeUTC *time.Time `json:"cancellationDateTimeUtc"`
	ErrorHResult            int        `json:"errorHResult"`
	Scope                   *string    `json:"scope"`
	ExternalID              *string    `json:"externalId"`
	RequestSource           string     `json:"requestSource"`
	RelatedFileInfo         any        `json:"relatedFileInfo"`
	Commands                []any      `json:"commands"`
	TroubleshootInfo        *string    `json:"troubleshootInfo"`
}

// Request is one request the emulator received.
type Request struct {
	Method   string
	Path     string // as sent, including any /api/v1.0 prefix
	RawQuery string
	Header   http.Header // includes Authorization: tests check the Bearer token
	Body     []byte
	API      string    // API name (APIMachineActions, APIToken, ...) or "" when unknown
	At       time.Time // emulated clock
}

// Fault makes the emulator misbehave on matching requests, before any
// normal processing (and before authentication).
type Fault struct {
	Method     string        // "" matches any method
	Path       string        // an API name (APIIndicatorImport, ...) or a substring of the path; "" matches any
	Status     int           // HTTP status to answer; 0 only applies Delay, then the request is served normally
	Code       string        // error code in the envelope; derived from Status when empty
	Message    string        // error message; a generic one when empty
	RetryAfter time.Duration // sets Retry-After (whole seconds, rounded up) when > 0
	Delay      time.Duration // waits before answering (or until the client gives up)
	// Hold serves the request (an action is created), then holds the
	// answer this long, or until the client gives up: Defender accepted a
	// call whose caller never learnt it (a crash right after the call).
	Hold time.Duration
	// Release, when set, ends Delay or Hold as soon as it is closed: a
	// test lets the answer go at the instant it chooses, not after a time.
	Release <-chan struct{}
	Count   int    // how many requests it affects: 0 means 1, negative means every request
	Body    string // raw response body, replacing the error envelope
}

// DuplicateBehavior says what happens when an action is requested while a
// same-type action is still Pending or InProgress on the machine.
type DuplicateBehavior int

const (
	// DuplicateReject answers 400 ActiveRequestAlreadyExists (the default).
	DuplicateReject DuplicateBehavior = iota
	// DuplicateReturnExisting answers 201 with the existing pending action.
	DuplicateReturnExisting
)
