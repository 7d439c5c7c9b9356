package defender

import (
	"encoding/json"
	"time"
)

// This file holds the request and response types of the Defender for Endpoint API
// (WindowsDefenderATP). Field names and casing follow Microsoft's documentation:
// machine action bodies are PascalCase, alert PATCH and indicators camelCase.

// IsolationType is the kind of network isolation requested.
type IsolationType string

// Isolation types accepted by POST /api/machines/{id}/isolate.
const (
	IsolationFull            IsolationType = "Full"
	IsolationSelective       IsolationType = "Selective"
	IsolationUnManagedDevice IsolationType = "UnManagedDevice"
)

// ScanType is the kind of antivirus scan requested.
type ScanType string

// Scan types accepted by POST /api/machines/{id}/runAntiVirusScan.
const (
	ScanQuick ScanType = "Quick"
	ScanFull  ScanType = "Full"
)

// ActionStatus is a MachineAction status.
type ActionStatus string

// MachineAction statuses. Succeeded, Failed, TimeOut and Cancelled are final.
const (
	StatusPending    ActionStatus = "Pending"
	StatusInProgress ActionStatus = "InProgress"
	StatusSucceeded  ActionStatus = "Succeeded"
	StatusFailed     ActionStatus = "Failed"
	StatusTimeOut    ActionStatus = "TimeOut"
	StatusCancelled  ActionStatus = "Cancelled"
)

// Final reports whether no further status change can happen.
func (s ActionStatus) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimeOut, StatusCancelled:
		return true
	}
	return false
}

// MachineAction is Microsoft's MachineAction entity.
type MachineAction struct {
	ID                      string       `json:"id"`
	Type                    string       `json:"type"`
	Title                   *string      `json:"title"`
	Scope                   *string      `json:"scope"`
	Requestor               string       `json:"requestor"`
	RequestorComment        string       `json:"requestorComment"`
	Status                  ActionStatus `json:"status"`
	MachineID               string       `json:"machineId"`
	ComputerDNSName         string       `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time    `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time    `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string      `json:"cancellationRequestor"`
	CancellationComment     *string      `json:"cancellationComment"`
	CancellationDateTimeUTC *time.Time   `json:"cancellationDateTimeUtc"`
	ErrorHResult            int          `json:"errorHResult"`
	ExternalID              *string      `json:"externalId"`
	RequestSource           string       `json:"requestSource"`
	// Raw is Microsoft's whole response body, kept for `--raw` output.
	Raw json.RawMessage `json:"-"`
}

// Machine is Microsoft's Machine entity (the fields defenderbot uses).
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

// AlertStatus is the status of an alert.
type AlertStatus string

// Alert statuses accepted by PATCH /api/alerts/{id}.
const (
	AlertNew        AlertStatus = "New"
	AlertInProgress AlertStatus = "InProgress"
	AlertResolved   AlertStatus = "Resolved"
)

// AlertComment is one entry of an alert's comments.
type AlertComment struct {
	Comment     string    `json:"comment"`
	CreatedBy   string    `json:"createdBy"`
	CreatedTime time.Time `json:"createdTime"`
}

// Alert is Microsoft's Alert entity (the fields defenderbot uses).
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
	// Raw is Microsoft's whole response body, kept for `--raw` output.
	Raw json.RawMessage `json:"-"`
}

// AlertUpdate is the body of PATCH /api/alerts/{id}. Nil fields are left out.
type AlertUpdate struct {
	Status         *string `json:"status,omitempty"`
	AssignedTo     *string `json:"assignedTo,omitempty"`
	Classification *string `json:"classification,omitempty"`
	Determination  *string `json:"determination,omitempty"`
	Comment        *string `json:"comment,omitempty"`
}

// IndicatorType is the kind of value an indicator matches.
type IndicatorType string

// Indicator types.
const (
	IndicatorFileSha1              IndicatorType = "FileSha1"
	IndicatorFileSha256            IndicatorType = "FileSha256"
	IndicatorFileMd5               IndicatorType = "FileMd5"
	IndicatorCertificateThumbprint IndicatorType = "CertificateThumbprint"
	IndicatorIPAddress             IndicatorType = "IpAddress"
	IndicatorDomainName            IndicatorType = "DomainName"
	IndicatorURL                   IndicatorType = "Url"
)

// Indicator is Microsoft's Indicator entity and the import request item.
type Indicator struct {
	ID                   string        `json:"id,omitempty"`
	IndicatorValue       string        `json:"indicatorValue"`
	IndicatorType        IndicatorType `json:"indicatorType"`
	Action               string        `json:"action"`
	Application          string        `json:"application,omitempty"`
	Title                string        `json:"title"`
	Description          string        `json:"description"`
	ExpirationTime       *time.Time    `json:"expirationTime,omitempty"`
	Severity             string        `json:"severity,omitempty"`
	RecommendedActions   string        `json:"recommendedActions,omitempty"`
	RBACGroupNames       []string      `json:"rbacGroupNames,omitempty"`
	GenerateAlert        bool          `json:"generateAlert"`
	ExternalID           string        `json:"externalId,omitempty"`
	CreatedByDisplayName string        `json:"createdByDisplayName,omitempty"`
	// Response-only fields.
	CreatedBy               string     `json:"createdBy,omitempty"`
	SourceType              string     `json:"sourceType,omitempty"`
	CreationTimeDateTimeUTC *time.Time `json:"creationTimeDateTimeUtc,omitempty"`
	LastUpdateTime          *time.Time `json:"lastUpdateTime,omitempty"`
}

// ImportResult is one element of the response to POST /api/indicators/import.
type ImportResult struct {
	ID            string  `json:"id"`
	Indicator     string  `json:"indicator"`
	IsFailed      bool    `json:"isFailed"`
	FailureReason *string `json:"failureReason"`
}

// API names used for client-side pacing, retries and metrics.
const (
	APIMachineActions  = "machineactions"            // isolate, unisolate, restrict, unrestrict, scan, collect, stop and quarantine, cancel, get/list actions
	APIPackageURI      = "machineactions_packageuri" // GET /api/machineactions/{id}/GetPackageUri (2/min, 120/hour)
	APIMachines        = "machines"                  // get machine, list machines
	APIAlerts          = "alerts"                    // get, list, PATCH alert
	APIIndicators      = "indicators"                // list, submit one, delete one
	APIIndicatorImport = "indicators_import"         // POST /api/indicators/import
	APIIndicatorDelete = "indicators_batchdelete"
	APIToken           = "token"
)
