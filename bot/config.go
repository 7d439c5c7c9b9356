package bot

import (
	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/config"
)

// ConfigFrom takes the bot's settings from the configuration, which owns
// every default; replica names this process in leases.
func ConfigFrom(c *config.Config, replica string) Config {
	a := c.Approval
	exempt := make([]actions.Name, len(a.ActionsWithoutApproval))
	for i, n := range a.ActionsWithoutApproval {
		exempt[i] = actions.Name(n)
	}
	return Config{
		Command:                c.Slack.Command,
		ApprovalChannel:        c.Slack.ApprovalChannel,
		Approvers:              a.Approvers,
		Requesters:             a.Requesters,
		AllowSelfApproval:      a.AllowSelfApproval,
		RequiredApprovals:      a.RequiredApprovals,
		TTL:                    a.TTL,
		ActionsWithoutApproval: exempt,
		PollInterval:           c.Defender.PollInterval,
		PollTimeout:            c.Defender.PollTimeout,
		ReplicaID:              replica,
		ResponseURLHosts:       c.Slack.ResponseURLHosts(),
		ContextWait:            config.ContextWait,
		StaleAfter:             config.StaleAfter,
		LookupTimeout:          config.LookupTimeout,
		LatestActions:          config.LatestActions,
		CardAlerts:             config.CardAlerts,
		TaskTimeout:            config.SlackTaskTimeout,
		UndoClaimTTL:           config.UndoClaimTTL,
		// The run's own bound, plus the time to tell the requester.
		IOCSyncTimeout:     c.IOCs.RunTimeout + config.SlackTaskTimeout,
		SweepEvery:         config.SweepEvery,
		GroupCacheTTL:      config.GroupCacheTTL,
		ResponseURLTimeout: config.ResponseURLTimeout,
		SlackRetry:         SlackRetryFrom(),
		MaxBulk:            a.MaxBulk,
		BulkPace:           config.BulkPace,
		ExecuteTimeout:     config.ExecuteTimeout,
		BulkCallTimeout:    config.BulkCallTimeout,
		ProgressEvery:      config.ProgressEvery,
	}
}

// SlackRetryFrom is the bound on retries of one Slack call (config's
// built-in values).
func SlackRetryFrom() SlackRetry {
	return SlackRetry{Attempts: config.SlackAttempts, MaxWait: config.SlackMaxWait}
}
