package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/defenderbot/defenderbot/config"
	"github.com/defenderbot/defenderbot/defender/defendertest"
	"github.com/defenderbot/defenderbot/taxii"
	"github.com/defenderbot/defenderbot/taxii/taxiitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmulatorCommand(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &cli{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }},
			[]string{"emulator", "--listen", "127.0.0.1:0", "--ca-out", ca})
	}()

	urlRE := regexp.MustCompile(`listening on (https://127\.0\.0\.1:\d+)`)
	var base string
	require.Eventually(t, func() bool {
		m := urlRE.FindStringSubmatch(stdout.String())
		if m == nil || !strings.Contains(stdout.String(), "Press Ctrl-C") {
			return false
		}
		base = m[1]
		return true
	}, 10*time.Second, 10*time.Millisecond, "stderr: %s", stderr.String())

	out := stdout.String()
	for _, want := range []string{"DEFENDER_BASE_URL=" + base, "AZURE_AUTHORITY_HOST=" + base, "AZURE_TENANT_ID=" + defendertest.TenantID,
		"AZURE_CLIENT_ID=" + defendertest.ClientID, "AZURE_CLIENT_SECRET=", "SSL_CERT_FILE=" + ca, defendertest.SampleMachineID1,
		defendertest.SampleAlertID1, "CA certificate written to " + ca} {
		assert.Contains(t, out, want)
	}

	// The TAXII server beside it serves the sample collection.
	root := regexp.MustCompile(`API root: +(http://127\.0\.0\.1:\d+/api1/)`).FindStringSubmatch(out)
	require.NotNil(t, root, out)
	assert.Contains(t, out, "--taxii-collection "+taxiitest.SampleCollectionID)
	tcfg := config.Default().IOCs.TAXII.Client()
	tcfg.APIRoot, tcfg.Username, tcfg.Password = root[1], taxiitest.SampleUsername, taxiitest.SamplePassword
	tc, err := taxii.New(tcfg)
	require.NoError(t, err)
	_, err = tc.Objects(ctx, taxiitest.SampleCollectionID, taxii.ObjectsOptions{Types: []string{"indicator"}, Limit: 1000}, func(p *taxii.Page) error {
		var objs []json.RawMessage
		require.NoError(t, json.NewDecoder(p.Objects).Decode(&objs))
		assert.Len(t, objs, 6)
		return nil
	})
	require.NoError(t, err)

	// trust the written CA, get a token, call the API
	pem, err := os.ReadFile(ca)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {defendertest.ClientID},
		"client_secret": {defendertest.ClientSecret}, "scope": {defendertest.Scope}}
	resp, err := client.PostForm(base+"/"+defendertest.TenantID+"/oauth2/v2.0/token", form)
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, tok.AccessToken)

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/api/machines/"+defendertest.SampleMachineID1, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = client.Do(req)
	require.NoError(t, err)
	var m struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, defendertest.SampleMachineID1, m.ID)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop after ctx was cancelled")
	}
}

func TestEmulatorCommandBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	assert.Equal(t, 2, run(context.Background(), c, []string{"emulator", "--nope"}))
	assert.Contains(t, stderr.String(), "usage: defenderbot emulator")
	assert.Equal(t, 2, run(context.Background(), c, []string{"emulator", "extra"}))
	assert.Equal(t, 1, run(context.Background(), c, []string{"emulator", "--listen", "256.0.0.1:99999"}))
	assert.Equal(t, 1, run(context.Background(), c, []string{"emulator", "--listen", "127.0.0.1:0", "--taxii-listen", "256.0.0.1:99999"}))
	assert.Contains(t, stderr.String(), "TAXII server: listen on 256.0.0.1:99999")
	assert.Empty(t, stdout.String())
}
