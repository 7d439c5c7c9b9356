package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemoRunsTheWholeFlow(t *testing.T) {
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code := run(ctx, c, []string{"demo"})

	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	got := out.String()
	for _, want := range []string{
		"-> HTTP 401: refused before anything was parsed or stored",
		"alice (U0ALICE) types: /defender isolate finance-laptop-01.contoso.com full suspicious beacon",
		"with Approve/Reject buttons",
		"the card shows the approver what is at stake",
		"Computer: finance-laptop-01.contoso.com",
		"Open alerts: 1",
		"Isolated: no",
		"You cannot approve your own request",
		"refused, nothing sent to Defender",
		"Defender API: POST /api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/isolate",
		"is now *Succeeded*",
		"Defender reports the action Succeeded",
		"(succeeded)",
		"the thread offers a [Release] button",
		"posts it in #C0ALERTS",
		"alice clicks Run scan on the card",
		"the alert gets a comment through Graph",
		"Demo complete in",
	} {
		assert.Contains(t, got, want)
	}
	assert.Empty(t, errOut.String())
}

func TestDemoRejectsArguments(t *testing.T) {
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	assert.Equal(t, 2, run(context.Background(), c, []string{"demo", "config.yaml"}))
	assert.Contains(t, errOut.String(), "takes no configuration")
	assert.Equal(t, 2, run(context.Background(), c, []string{"demo", "--nope"}))
	assert.Equal(t, 0, run(context.Background(), c, []string{"demo", "-h"}))
	assert.Empty(t, out.String())
}

func TestDemoTimesOutCleanly(t *testing.T) {
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, 1, run(ctx, c, []string{"demo"}))
	assert.Contains(t, errOut.String(), "defenderbot demo:")
}
