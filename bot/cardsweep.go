package bot

import (
	"context"
	"errors"

	"github.com/defenderbot/defenderbot/approval"
	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/machineinfo"
)

// A card's context is looked up by the replica that posted it, which fills
// in what came after ContextWait by an update. If that replica dies first,
// nothing would: the card would read "loading…" forever. So every replica
// sweeps the open requests' cards (Run: after each of the approval core's
// scans, every SweepEvery): a context still
// loading once its look-ups' own deadline has passed (ContextWait +
// LookupTimeout after the request, by when the living creator has stored
// every answer or its timeout) is marked unavailable and the card updated.

// errLookupAbandoned marks a look-up whose replica stopped before it ended.
var errLookupAbandoned = errors.New("the replica looking it up stopped")

// sweepCards finishes the contexts that the replica looking them up left
// loading (see above).
func (s *Service) sweepCards(ctx context.Context) {
	rs, err := s.deps.Store.ListRequests(ctx, approval.RequestFilter{States: []approval.State{
		approval.StatePending, approval.StateApproved, approval.StateExecuting, approval.StateRunning}})
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "card sweep: listing requests failed", "error", err)
		}
		return
	}
	overdue := s.now().Add(-(s.cfg.ContextWait + s.cfg.LookupTimeout))
	for _, r := range rs {
		if r.ApprovalTS == "" || r.CreatedAt.After(overdue) {
			continue
		}
		keys := []string{r.ID}
		if r.Bulk() {
			keys = keys[:0]
			for _, t := range r.Targets {
				keys = append(keys, bulkCardKey(r.ID, t.MachineID))
			}
		}
		changed := false
		for _, k := range keys {
			info := s.storedCardInfo(ctx, k)
			if info == nil || info.Complete() {
				continue
			}
			s.setCardInfo(ctx, k, abandoned(*info))
			changed = true
		}
		if changed {
			s.log.InfoContext(ctx, "card context left loading by its replica: marked unavailable", "request", r.ID)
			s.updateApprovalMessage(ctx, r)
		}
	}
}

// abandoned marks every part of info still loading as failed.
func abandoned(info machineinfo.Info) machineinfo.Info {
	if !info.Machine.Done {
		info.Machine = machineinfo.Part[*defender.Machine]{Done: true, Err: errLookupAbandoned}
	}
	if !info.Alerts.Done {
		info.Alerts = machineinfo.Part[[]defender.Alert]{Done: true, Err: errLookupAbandoned}
	}
	if !info.Actions.Done {
		info.Actions = machineinfo.Part[[]defender.MachineAction]{Done: true, Err: errLookupAbandoned}
	}
	return info
}
