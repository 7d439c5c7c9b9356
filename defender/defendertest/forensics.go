package defendertest

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// This file holds the forensic machine actions' extras: the file of a stop
// and quarantine, the investigation package's short-lived download link, and
// a device's alerts.

// packagePath is where the emulator serves investigation packages, like
// Microsoft's userrequests host (…/safedownload/WDATP_Investigation_Package.zip?token=…).
const packagePath = "safedownload"

// WithPackageURILifetime sets how long (emulated time) a link returned by
// GetPackageUri works. Microsoft only says "a short time"; default 10m.
func WithPackageURILifetime(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.packageURITTL = d
		}
	}
}

// relatedFileInfo is MachineAction.relatedFileInfo.
type relatedFileInfo struct {
	FileIdentifier     string `json:"fileIdentifier"`
	FileIdentifierType string `json:"fileIdentifierType"`
}

type packageLink struct {
	actionID string
	expires  time.Time
}

// sha1Param validates the Sha1 property of StopAndQuarantineFile.
func sha1Param(v *string) (*relatedFileInfo, *response) {
	if v == nil || strings.TrimSpace(*v) == "" {
		resp := missing("Sha1")
		return nil, &resp
	}
	h := strings.ToLower(strings.TrimSpace(*v))
	if _, err := hex.DecodeString(h); err != nil || len(h) != 40 {
		resp := errorResponse(http.StatusBadRequest, "InvalidHashValue", fmt.Sprintf("Hash value %s is invalid", *v))
		return nil, &resp
	}
	return &relatedFileInfo{FileIdentifier: h, FileIdentifierType: "Sha1"}, nil
}

// sameFile reports whether a concerns file (nil: any action, since only
// stop and quarantine names a file).
func sameFile(a *action, file *relatedFileInfo) bool {
	if file == nil {
		return true
	}
	f, ok := a.RelatedFileInfo.(relatedFileInfo)
	return ok && f.FileIdentifier == file.FileIdentifier
}

// forensicPlatformCheck refuses stop and quarantine on devices that are not
// Windows, as Microsoft documents (Windows 10 1703 or later, Windows 11,
// Windows Server).
func forensicPlatformCheck(typ string, m *Machine) *response {
	if typ != "StopAndQuarantineFile" || strings.HasPrefix(strings.ToLower(m.OSPlatform), "windows") {
		return nil
	}
	resp := errorResponse(http.StatusBadRequest, "OsPlatformNotSupported",
		fmt.Sprintf("OS Platform %s isn't supported for this action", m.OSPlatform))
	return &resp
}

// listMachineAlerts handles GET /api/machines/{id}/alerts.
func (s *Server) listMachineAlerts(r *http.Request, p []string, _ []byte) response {
	m := s.machineByIDOrNameLocked(p[0])
	if m == nil {
		return errorResponse(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Machine %s was not found", p[0]))
	}
	var items []any
	for _, a := range s.state.alerts {
		if strings.EqualFold(a.MachineID, m.ID) {
			items = append(items, copyAlert(a))
		}
	}
	return s.listResponse(r, "Alerts", alertFilterFields, items)
}

// getPackageURI handles GET /api/machineactions/{id}/GetPackageUri: 404
// until the collection has succeeded, then a fresh link that expires.
func (s *Server) getPackageURI(r *http.Request, p []string, _ []byte) response {
	a := s.actionLocked(p[0])
	if a == nil {
		return actionNotFound(p[0])
	}
	s.refreshLocked(a)
	if a.Type != "CollectInvestigationPackage" {
		return errorResponse(http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("Machine action %s has no investigation package", a.ID))
	}
	if a.Status != "Succeeded" {
		return errorResponse(http.StatusNotFound, "ResourceNotFound",
			fmt.Sprintf("The investigation package of machine action %s is not available (status %s)", a.ID, a.Status))
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	s.state.packages[tok] = packageLink{actionID: a.ID, expires: s.nowLocked().Add(s.cfg.packageURITTL)}
	link := baseURL(r) + "/" + packagePath + "/WDATP_Investigation_Package.zip?token=" + tok
	// Microsoft's example wraps the link in escaped quotes.
	return entityResponse(http.StatusOK, metadata(r, "Edm.String"), struct {
		Value string `json:"value"`
	}{`"` + link + `"`})
}

func isPackageDownloadPath(segs []string) bool {
	return len(segs) == 2 && strings.EqualFold(segs[0], packagePath)
}

// downloadPackage serves a package link: a small zip while the link is
// valid, 403 once it has expired or for an unknown token (no bearer token:
// the link itself is the credential).
func (s *Server) downloadPackage(r *http.Request) response {
	if r.Method != http.MethodGet {
		return methodNotAllowed()
	}
	l, ok := s.state.packages[r.URL.Query().Get("token")]
	if !ok || !s.nowLocked().Before(l.expires) {
		return response{status: http.StatusForbidden, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
			body: []byte("AuthenticationFailed: the link is invalid or has expired")}
	}
	a := s.actionLocked(l.actionID)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("README.txt")
	fmt.Fprintf(w, "Investigation package of %s (machine action %s), collected by the defenderbot emulator.\n",
		a.ComputerDNSName, a.ID)
	_ = zw.Close()
	return response{status: http.StatusOK, header: http.Header{"Content-Type": {"application/zip"}}, body: buf.Bytes()}
}
