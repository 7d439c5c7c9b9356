package bot

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
)

// cardMsg is the approval message with the machine context this replica holds.
func (s *Service) cardMsg(ctx context.Context, r *approval.Request) []slack.MsgOption {
	if r.Bulk() {
		blocks := renderBulkApproval(r, s.bulkCardInfo(ctx, r), s.cfg.StaleAfter)
		return []slack.MsgOption{slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(blocks...)}
	}
	blocks := renderApprovalWith(r, s.cardInfo(ctx, r.ID), s.cfg.StaleAfter, s.cfg.CardAlerts)
	return []slack.MsgOption{slack.MsgOptionText(approvalFallback(r), false), slack.MsgOptionBlocks(blocks...)}
}

// notifier shows in Slack what the approval core reports: it updates the
// approval message and its thread, and tells the requester by direct
// message.
type notifier struct{ s *Service }

var _ approval.Notifier = notifier{}

func (n notifier) Changed(ctx context.Context, r *approval.Request) {
	n.s.updateApprovalMessage(ctx, r)
}

func (n notifier) Status(ctx context.Context, r *approval.Request, ma *defender.MachineAction) {
	n.s.threadReply(ctx, r, renderStatusChange(ma))
}

func (n notifier) Running(ctx context.Context, r *approval.Request, ma *defender.MachineAction) {
	how := "was approved"
	if len(r.Approvals) == 0 {
		how = "needs no approval"
	}
	n.s.dm(ctx, r.RequesterID, fmt.Sprintf(":arrows_counterclockwise: Your request %s %s; Defender action `%s` is %s. I will tell you the outcome.",
		requestRef(r), how, escapeMrkdwn(ma.ID), escapeMrkdwn(string(ma.Status))))
}

func (n notifier) Finished(ctx context.Context, r *approval.Request) {
	n.s.updateApprovalMessage(ctx, r)
	if r.Bulk() {
		// Per machine: the outcomes, and each collected package's link;
		// the undo of the machines where it succeeded. Alert comments are
		// for requests on one machine.
		n.s.dm(ctx, r.RequesterID, bulkFinishedText(r))
		if r.Action == actions.CollectInvestigationPackage {
			n.s.sendPackageLinks(ctx, r)
		}
		n.s.offerUndo(ctx, r)
		n.s.markUndone(ctx, r)
		return
	}
	if r.State == approval.StateSucceeded {
		n.s.commentOnAlert(ctx, r)
	}
	text := fmt.Sprintf(":white_check_mark: Your request %s succeeded.", requestRef(r))
	if r.State == approval.StateFailed {
		text = fmt.Sprintf(":warning: Your request %s failed: %s", requestRef(r), escapeMrkdwn(r.Error))
	}
	n.s.dm(ctx, r.RequesterID, text)
	if r.State == approval.StateSucceeded && r.Action == actions.CollectInvestigationPackage {
		n.s.sendPackageLink(ctx, r)
	}
	if r.State == approval.StateSucceeded {
		n.s.offerUndo(ctx, r)
		n.s.markUndone(ctx, r)
	}
}

func (n notifier) Expired(ctx context.Context, r *approval.Request) {
	n.s.updateApprovalMessage(ctx, r)
	n.s.dm(ctx, r.RequesterID, fmt.Sprintf(":hourglass: Your request %s expired without enough approvals; nothing was run.", requestRef(r)))
}

func (n notifier) Rejected(ctx context.Context, r *approval.Request) {
	n.s.updateApprovalMessage(ctx, r)
	n.s.dm(ctx, r.RequesterID, fmt.Sprintf(":x: Your request %s was rejected by <@%s>: %s",
		requestRef(r), escapeMrkdwn(r.RejectedBy), escapeMrkdwn(r.RejectReason)))
}

func (n notifier) Progress(ctx context.Context, r *approval.Request) {
	n.s.showProgress(ctx, r)
}
