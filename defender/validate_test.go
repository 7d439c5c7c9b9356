package defender

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIsolationType(t *testing.T) {
	for in, want := range map[string]IsolationType{
		"full": IsolationFull, "FULL": IsolationFull, " Selective ": IsolationSelective,
		"unmanaged": IsolationUnManagedDevice, "UnManagedDevice": IsolationUnManagedDevice, "unmanaged-device": IsolationUnManagedDevice,
	} {
		got, err := ParseIsolationType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "partial", "fullx"} {
		_, err := ParseIsolationType(in)
		require.ErrorIs(t, err, ErrInvalidArgument, in)
		assert.Contains(t, err.Error(), "isolation type")
		assert.Contains(t, err.Error(), "Full, Selective, UnManagedDevice")
	}
}

func TestParseScanType(t *testing.T) {
	got, err := ParseScanType("QUICK")
	require.NoError(t, err)
	assert.Equal(t, ScanQuick, got)
	got, err = ParseScanType("full")
	require.NoError(t, err)
	assert.Equal(t, ScanFull, got)
	_, err = ParseScanType("")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "scan type: is required (allowed: Quick, Full)")
	_, err = ParseScanType("deep")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestParseAlertStatus(t *testing.T) {
	for in, want := range map[string]AlertStatus{
		"new": AlertNew, "InProgress": AlertInProgress, "in progress": AlertInProgress, "in_progress": AlertInProgress, "RESOLVED": AlertResolved,
	} {
		got, err := ParseAlertStatus(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseAlertStatus("Unknown")
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestParseClassification(t *testing.T) {
	for in, want := range map[string]string{
		"truepositive": "TruePositive", "False Positive": "FalsePositive",
		"Informational, expected activity": "InformationalExpectedActivity", "informationalexpectedactivity": "InformationalExpectedActivity",
	} {
		got, err := ParseClassification(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := ParseClassification("Unknown")
	require.ErrorIs(t, err, ErrInvalidArgument)
	assert.Contains(t, err.Error(), "TruePositive, InformationalExpectedActivity, FalsePositive")
}

func TestParseDetermination(t *testing.T) {
	ok := []struct{ cls, det, want string }{
		{"TruePositive", "malware", "Malware"},
		{"truepositive", "MultiStagedAttack", "MultiStagedAttack"},
		{"TruePositive", "compromised user", "CompromisedUser"},
		{"TruePositive", "Other", "Other"},
		{"InformationalExpectedActivity", "ConfirmedActivity", "ConfirmedActivity"},
		{"InformationalExpectedActivity", "confirmeduseractivity", "ConfirmedUserActivity"},
		{"InformationalExpectedActivity", "SecurityTesting", "SecurityTesting"},
		{"FalsePositive", "NotMalicious", "NotMalicious"},
		{"FalsePositive", "clean", "Clean"},
		{"FalsePositive", "InsufficientData", "InsufficientData"},
	}
	for _, tt := range ok {
		got, err := ParseDetermination(tt.cls, tt.det)
		require.NoError(t, err, "%s/%s", tt.cls, tt.det)
		assert.Equal(t, tt.want, got)
	}
	bad := []struct{ cls, det, substr string }{
		{"FalsePositive", "Malware", "not allowed with classification FalsePositive"},
		{"TruePositive", "Clean", "not allowed with classification TruePositive"},
		{"InformationalExpectedActivity", "Phishing", "allowed: SecurityTesting, LineOfBusinessApplication, ConfirmedActivity, ConfirmedUserActivity, Other"},
		{"", "Malware", "requires a classification"},
		{"Bogus", "Malware", "classification"},
		{"TruePositive", "", "determination: is required"},
		{"TruePositive", "Apt", "not allowed"},
	}
	for _, tt := range bad {
		_, err := ParseDetermination(tt.cls, tt.det)
		require.ErrorIs(t, err, ErrInvalidArgument, "%s/%s", tt.cls, tt.det)
		assert.Contains(t, err.Error(), tt.substr)
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "da637472900382838869_1364969609", "host.contoso.com", "6b001073-5500-4205-8287-6f1184936f67", "995"} {
		assert.NoError(t, validateID("id", ok), ok)
	}
	for _, bad := range []string{"", "a/b", `a\b`, "a?b", "a#b", "a%20", "..", "a..b", "a b", "a\tb", "a\nb", "\x7f", "a\u00a0b", "\xff"} {
		assert.ErrorIs(t, validateID("id", bad), ErrInvalidArgument, "%q", bad)
	}
}
