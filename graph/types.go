package graph

import (
	"encoding/json"
	"time"
)

// Alert is Graph's security alert (v1.0 alerts_v2), the properties
// defenderbot reads. Enum values are Graph's camelCase spelling.
type Alert struct {
	ID                    string     `json:"id"`
	ProviderAlertID       string     `json:"providerAlertId"`
	IncidentID            string     `json:"incidentId"`
	Status                string     `json:"status"`
	Severity              string     `json:"severity"`
	Classification        string     `json:"classification"`
	Determination         string     `json:"determination"`
	ServiceSource         string     `json:"serviceSource"`
	DetectionSource       string     `json:"detectionSource"`
	DetectorID            string     `json:"detectorId"`
	TenantID              string     `json:"tenantId"`
	Title                 string     `json:"title"`
	Description           string     `json:"description"`
	RecommendedActions    string     `json:"recommendedActions"`
	Category              string     `json:"category"`
	AssignedTo            string     `json:"assignedTo"`
	AlertWebURL           string     `json:"alertWebUrl"`
	IncidentWebURL        string     `json:"incidentWebUrl"`
	ActorDisplayName      string     `json:"actorDisplayName"`
	ThreatDisplayName     string     `json:"threatDisplayName"`
	ThreatFamilyName      string     `json:"threatFamilyName"`
	MitreTechniques       []string   `json:"mitreTechniques"`
	CreatedDateTime       time.Time  `json:"createdDateTime"`
	LastUpdateDateTime    time.Time  `json:"lastUpdateDateTime"`
	FirstActivityDateTime time.Time  `json:"firstActivityDateTime"`
	LastActivityDateTime  time.Time  `json:"lastActivityDateTime"`
	ResolvedDateTime      *time.Time `json:"resolvedDateTime"`
	Comments              []Comment  `json:"comments"`
	Evidence              []Evidence `json:"evidence"`
	SystemTags            []string   `json:"systemTags"`

	// Raw is the whole JSON object as Graph sent it.
	Raw json.RawMessage `json:"-"`
}

// Comment is one alertComment.
type Comment struct {
	Comment              string    `json:"comment"`
	CreatedByDisplayName string    `json:"createdByDisplayName"`
	CreatedDateTime      time.Time `json:"createdDateTime"`
}

// Evidence is one alertEvidence: the base properties and those of the
// kinds defenderbot shows (device, user, file, IP, URL).
type Evidence struct {
	ODataType         string    `json:"@odata.type"`
	CreatedDateTime   time.Time `json:"createdDateTime"`
	Verdict           string    `json:"verdict"`
	RemediationStatus string    `json:"remediationStatus"`
	Roles             []string  `json:"roles"`

	// deviceEvidence
	MdeDeviceID      string `json:"mdeDeviceId"`
	AzureAdDeviceID  string `json:"azureAdDeviceId"`
	DeviceDNSName    string `json:"deviceDnsName"`
	OSPlatform       string `json:"osPlatform"`
	HealthStatus     string `json:"healthStatus"`
	RiskScore        string `json:"riskScore"`
	OnboardingStatus string `json:"onboardingStatus"`

	// userEvidence
	UserAccount *UserAccount `json:"userAccount"`

	// fileEvidence
	FileDetails *FileDetails `json:"fileDetails"`

	// ipEvidence, urlEvidence
	IPAddress string `json:"ipAddress"`
	URL       string `json:"url"`
}

// Evidence kinds (@odata.type).
const (
	EvidenceDevice = "#microsoft.graph.security.deviceEvidence"
	EvidenceUser   = "#microsoft.graph.security.userEvidence"
	EvidenceFile   = "#microsoft.graph.security.fileEvidence"
	EvidenceIP     = "#microsoft.graph.security.ipEvidence"
	EvidenceURL    = "#microsoft.graph.security.urlEvidence"
)

// UserAccount is userEvidence.userAccount.
type UserAccount struct {
	AccountName       string `json:"accountName"`
	DomainName        string `json:"domainName"`
	UserSid           string `json:"userSid"`
	AzureAdUserID     string `json:"azureAdUserId"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
}

// FileDetails is fileEvidence.fileDetails.
type FileDetails struct {
	Sha1     string `json:"sha1"`
	Sha256   string `json:"sha256"`
	FileName string `json:"fileName"`
	FilePath string `json:"filePath"`
}

// Devices returns the alert's device evidence.
func (a *Alert) Devices() []Evidence { return a.evidence(EvidenceDevice) }

// Users returns the alert's user evidence.
func (a *Alert) Users() []Evidence { return a.evidence(EvidenceUser) }

func (a *Alert) evidence(kind string) []Evidence {
	var out []Evidence
	for _, e := range a.Evidence {
		if e.ODataType == kind {
			out = append(out, e)
		}
	}
	return out
}

// AlertUpdate changes an alert; nil fields are left alone. Enum values are
// accepted in either API's spelling (InProgress or inProgress) and sent in
// Graph's. An empty AssignedTo is refused.
type AlertUpdate struct {
	Status         *string `json:"status,omitempty"`
	Classification *string `json:"classification,omitempty"`
	Determination  *string `json:"determination,omitempty"`
	AssignedTo     *string `json:"assignedTo,omitempty"`
}
