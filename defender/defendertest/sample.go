package defendertest

import "time"

// Sample data IDs, so that demos and docs can name them.
const (
	SampleMachineID1 = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	SampleMachineID2 = "7c2a8c62b0a9f4c4f1c3e0a5d7b9e2f4a6c8d0e2"
	SampleMachineID3 = "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f"
	SampleAlertID1   = "da637472900382838869_1364969609"
	SampleAlertID2   = "da637472900382838870_1364969610"
)

// AddSampleData seeds a few machines and alerts for the standalone emulator
// and demos.
func (s *Server) AddSampleData() {
	now := s.Now()
	group := "Finance"
	groupID, build1, build2 := int64(42), int64(22631), int64(17763)
	s.AddMachine(Machine{ID: SampleMachineID1, ComputerDNSName: "finance-laptop-01.contoso.com", OSPlatform: "Windows11",
		Version: "23H2", LastIPAddress: "10.0.1.15", LastExternalIPAddress: "203.0.113.10", HealthStatus: "Active",
		RiskScore: "High", ExposureLevel: "Medium", RBACGroupName: &group, RBACGroupID: &groupID, OSBuild: &build1, MachineTags: []string{"finance"},
		LastSeen: now.Add(-time.Hour)})
	s.AddMachine(Machine{ID: SampleMachineID2, ComputerDNSName: "web-srv-02.contoso.com", OSPlatform: "WindowsServer2019",
		Version: "1809", LastIPAddress: "10.0.2.20", LastExternalIPAddress: "203.0.113.20", HealthStatus: "Active",
		RiskScore: "Medium", ExposureLevel: "High", OSBuild: &build2, LastSeen: now.Add(-2 * time.Hour)})
	s.AddMachine(Machine{ID: SampleMachineID3, ComputerDNSName: "dev-linux-03", OSPlatform: "Linux",
		LastIPAddress: "10.0.3.30", HealthStatus: "Inactive", RiskScore: "Low", ExposureLevel: "Low",
		LastSeen: now.Add(-72 * time.Hour)})
	s.AddAlert(Alert{ID: SampleAlertID1, Title: "Suspicious PowerShell command line",
		Description: "A suspicious PowerShell activity was observed on the machine.", Status: "New", Severity: "High",
		Category: "Execution", MachineID: SampleMachineID1, AlertCreationTime: now.Add(-30 * time.Minute)})
	s.AddAlert(Alert{ID: SampleAlertID2, Title: "Connection to a known malicious IP",
		Description: "The machine connected to an IP address listed in threat intelligence.", Status: "New",
		Severity: "Medium", Category: "CommandAndControl", MachineID: SampleMachineID2,
		AlertCreationTime: now.Add(-10 * time.Minute)})
}
