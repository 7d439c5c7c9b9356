package defendertest

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type token struct {
	audience string // audienceMDE or audienceGraph
	roles    []string
	expires  time.Time
	revoked  bool
}

type action struct {
	MachineAction
	scope string // filled into MachineAction.Scope once the action starts
}

type state struct {
	offset time.Duration
	seq    int // source of deterministic GUIDs

	machines   []*Machine
	alerts     []*Alert
	actions    []*action
	indicators []*Indicator // in creation order; ids are increasing numbers
	nextIndID  int

	outcomes     map[string]string // lower machine id -> final status
	tokens       map[string]*token
	tokensIssued int
	tokenDown    bool
	faults       []*Fault
	requests     []Request
	calls        map[string][]time.Time // API name -> accepted call times (rate limits)
	graph        graphState             // Microsoft Graph alerts_v2 (graph.go)
	packages     map[string]packageLink // download token -> link (GetPackageUri)
}

func newState() state {
	return state{
		outcomes:  map[string]string{},
		tokens:    map[string]*token{},
		calls:     map[string][]time.Time{},
		packages:  map[string]packageLink{},
		nextIndID: 1,
	}
}

// guid returns a deterministic, GUID-shaped id: tests and golden files stay
// stable while the shape matches Microsoft's.
func (s *Server) guidLocked() string {
	s.state.seq++
	return fmt.Sprintf("defe0000-0000-4000-8000-%012x", s.state.seq)
}

func (s *Server) machineLocked(id string) *Machine {
	for _, m := range s.state.machines {
		if strings.EqualFold(m.ID, id) {
			return m
		}
	}
	return nil
}

func (s *Server) machineByIDOrNameLocked(key string) *Machine {
	if m := s.machineLocked(key); m != nil {
		return m
	}
	for _, m := range s.state.machines {
		if strings.EqualFold(m.ComputerDNSName, key) {
			return m
		}
	}
	return nil
}

func (s *Server) alertLocked(id string) *Alert {
	for _, a := range s.state.alerts {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (s *Server) actionLocked(id string) *action {
	for _, a := range s.state.actions {
		if strings.EqualFold(a.ID, id) {
			return a
		}
	}
	return nil
}

// AddMachine adds (or replaces, by ID) a machine. Empty fields get
// realistic defaults: a 40-hex ID, healthStatus Active, onboardingStatus
// Onboarded, lastSeen now.
func (s *Server) AddMachine(m Machine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	if m.ID == "" {
		s.state.seq++
		m.ID = fmt.Sprintf("%040x", 0xdefe0000+s.state.seq)
	}
	if m.HealthStatus == "" {
		m.HealthStatus = "Active"
	}
	if m.OnboardingStatus == "" {
		m.OnboardingStatus = "Onboarded"
	}
	if m.OSPlatform == "" {
		m.OSPlatform = "Windows11"
	}
	if m.RiskScore == "" {
		m.RiskScore = "None"
	}
	if m.ExposureLevel == "" {
		m.ExposureLevel = "Low"
	}
	if m.LastSeen.IsZero() {
		m.LastSeen = now
	}
	if m.FirstSeen.IsZero() {
		m.FirstSeen = m.LastSeen.Add(-30 * 24 * time.Hour)
	}
	m.MachineTags = append([]string{}, m.MachineTags...)
	for i, old := range s.state.machines {
		if strings.EqualFold(old.ID, m.ID) {
			s.state.machines[i] = &m
			return
		}
	}
	s.state.machines = append(s.state.machines, &m)
}

// AddAlert adds (or replaces, by ID) an alert. Empty fields get defaults:
// an ID in Microsoft's style, status New, creation time now, and the
// machine's computerDnsName.
func (s *Server) AddAlert(a Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	if a.ID == "" {
		s.state.seq++
		a.ID = fmt.Sprintf("da63747290038283%04d_%d", s.state.seq, 1364969600+s.state.seq)
	}
	if a.Status == "" {
		a.Status = "New"
	}
	if a.Severity == "" {
		a.Severity = "Medium"
	}
	if a.AlertCreationTime.IsZero() {
		a.AlertCreationTime = now
	}
	if a.ComputerDNSName == "" {
		if m := s.machineLocked(a.MachineID); m != nil {
			a.ComputerDNSName = m.ComputerDNSName
		}
	}
	a.Comments = append([]AlertComment{}, a.Comments...)
	for i, old := range s.state.alerts {
		if old.ID == a.ID {
			s.state.alerts[i] = &a
			return
		}
	}
	s.state.alerts = append(s.state.alerts, &a)
}

// AddIndicator adds an indicator as if an analyst created it in the portal
// (sourceType User), upserting on indicatorType + indicatorValue, and
// returns its id. It does not validate: tests may seed odd data.
func (s *Server) AddIndicator(i Indicator) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	if i.SourceType == "" {
		i.SourceType = "User"
	}
	if i.CreatedBy == "" {
		i.CreatedBy = "analyst@contoso.com"
	}
	if i.CreatedByDisplayName == "" {
		i.CreatedByDisplayName = i.CreatedBy
	}
	if i.CreatedBySource == "" {
		i.CreatedBySource = "Portal"
	}
	if i.LastUpdatedBy == "" {
		i.LastUpdatedBy = i.CreatedBy
	}
	if i.Source == "" {
		i.Source = i.CreatedBy
	}
	if i.Severity == "" {
		i.Severity = "Informational"
	}
	if i.CreationTimeDateTimeUTC.IsZero() {
		i.CreationTimeDateTimeUTC = now
	}
	if i.LastUpdateTime.IsZero() {
		i.LastUpdateTime = i.CreationTimeDateTimeUTC
	}
	i.RBACGroupNames = append([]string{}, i.RBACGroupNames...)
	i.RBACGroupIDs = append([]string{}, i.RBACGroupIDs...)
	return s.putIndicatorLocked(&i)
}

// putIndicatorLocked stores i, keeping the id of an indicator with the same
// type and value (Microsoft's "submit or update").
func (s *Server) putIndicatorLocked(i *Indicator) string {
	if old := s.indicatorByKeyLocked(i.IndicatorType, i.IndicatorValue); old != nil {
		i.ID = old.ID
		*old = *i
		return i.ID
	}
	if i.ID == "" || s.indicatorLocked(i.ID) != nil {
		i.ID = strconv.Itoa(s.state.nextIndID)
	}
	if n, err := strconv.Atoi(i.ID); err == nil && n >= s.state.nextIndID {
		s.state.nextIndID = n + 1
	}
	s.state.indicators = append(s.state.indicators, i)
	return i.ID
}

func (s *Server) indicatorByKeyLocked(typ, value string) *Indicator {
	for _, old := range s.state.indicators {
		if strings.EqualFold(old.IndicatorType, typ) && strings.EqualFold(old.IndicatorValue, value) {
			return old
		}
	}
	return nil
}

func (s *Server) indicatorLocked(id string) *Indicator {
	for _, old := range s.state.indicators {
		if old.ID == id {
			return old
		}
	}
	return nil
}

func activeIndicator(i *Indicator, now time.Time) bool {
	return i.ExpirationTime == nil || i.ExpirationTime.After(now)
}

func (s *Server) activeIndicatorsLocked() []*Indicator {
	now := s.nowLocked()
	var out []*Indicator
	for _, i := range s.state.indicators {
		if activeIndicator(i, now) {
			out = append(out, i)
		}
	}
	return out
}

func (s *Server) deleteIndicatorsLocked(ids []string) {
	s.state.indicators = slices.DeleteFunc(s.state.indicators, func(i *Indicator) bool {
		return slices.Contains(ids, i.ID)
	})
}

// Indicators returns a copy of the active (not expired) indicators, by id.
func (s *Server) Indicators() []Indicator {
	s.mu.Lock()
	defer s.mu.Unlock()
	act := s.activeIndicatorsLocked()
	out := make([]Indicator, 0, len(act))
	for _, i := range act {
		out = append(out, copyIndicator(i))
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, _ := strconv.Atoi(out[a].ID)
		y, _ := strconv.Atoi(out[b].ID)
		return x < y
	})
	return out
}

// Alert returns a copy of the alert with this id.
func (s *Server) Alert(id string) (Alert, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.alertLocked(id)
	if a == nil {
		return Alert{}, false
	}
	return copyAlert(a), true
}

// Machine returns a copy of the machine with this id.
func (s *Server) Machine(id string) (Machine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machineLocked(id)
	if m == nil {
		return Machine{}, false
	}
	c := *m
	c.MachineTags = append([]string{}, m.MachineTags...)
	return c, true
}

// MachineAction returns the current state of the action with this id.
func (s *Server) MachineAction(id string) (MachineAction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actionLocked(id)
	if a == nil {
		return MachineAction{}, false
	}
	s.refreshLocked(a)
	return copyAction(a), true
}

// MachineActions returns the current state of every action, oldest first.
func (s *Server) MachineActions() []MachineAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MachineAction, 0, len(s.state.actions))
	for _, a := range s.state.actions {
		s.refreshLocked(a)
		out = append(out, copyAction(a))
	}
	return out
}

// refreshLocked moves an action along its lifecycle on the emulated clock.
func (s *Server) refreshLocked(a *action) {
	if isFinal(a.Status) {
		return
	}
	now := s.nowLocked()
	elapsed := now.Sub(a.CreationDateTimeUTC)
	switch {
	case elapsed >= s.cfg.toFinal:
		outcome := s.state.outcomes[strings.ToLower(a.MachineID)]
		if outcome == "" {
			outcome = "Succeeded"
		}
		a.Status = outcome
		a.LastUpdateDateTimeUTC = a.CreationDateTimeUTC.Add(s.cfg.toFinal)
		if outcome != "Succeeded" {
			a.ErrorHResult = -2147467259 // E_FAIL, as Defender reports for failed actions
		}
		a.fillScope()
	case elapsed >= s.cfg.toInProgress:
		a.Status = "InProgress"
		a.LastUpdateDateTimeUTC = a.CreationDateTimeUTC.Add(s.cfg.toInProgress)
		a.fillScope()
	}
}

func (a *action) fillScope() {
	if a.scope != "" && a.Scope == nil {
		sc := a.scope
		a.Scope = &sc
	}
}

func isFinal(status string) bool {
	switch status {
	case "Succeeded", "Failed", "TimeOut", "Cancelled":
		return true
	}
	return false
}

func copyAction(a *action) MachineAction {
	c := a.MachineAction
	c.Commands = append([]any{}, a.Commands...)
	return c
}

func copyAlert(a *Alert) Alert {
	c := *a
	c.Comments = append([]AlertComment{}, a.Comments...)
	return c
}

func copyIndicator(i *Indicator) Indicator {
	c := *i
	c.RBACGroupNames = append([]string{}, i.RBACGroupNames...)
	c.RBACGroupIDs = append([]string{}, i.RBACGroupIDs...)
	return c
}
