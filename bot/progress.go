package bot

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/defenderbot/defenderbot/approval"
)

// A bulk request's progress table changes with every machine (one call a
// second, then each status), and Slack allows about one chat.update a
// second per channel (Tier 3, short bursts only). So the updates of one
// table are coalesced: at most one per Config.ProgressEvery. A state seen
// sooner waits, and one delayed update carries the newest of those that
// waited; the final state (every machine done) is sent at once and
// cancels the delayed one, so it is always what the table shows last.

// progressTable throttles one bulk request's progress table on this replica.
type progressTable struct {
	mu      sync.Mutex
	last    time.Time         // when an update was last sent
	seq     int               // states seen
	pending *approval.Request // the newest state waiting (a copy)
	pendSeq int               // its seq
	// stop cancels the delayed update's wait; nil when none waits.
	stop context.CancelFunc
	// busy: an update is being sent (the interval counts from its answer).
	busy bool

	send sync.Mutex // one chat.update at a time, so the newest lands last
	sent int        // seq of the newest state sent
}

// progressOf returns request id's throttle.
func (s *Service) progressOf(id string) *progressTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	pt, ok := s.progress[id]
	if !ok {
		pt = &progressTable{}
		s.progress[id] = pt
	}
	return pt
}

func (s *Service) dropProgress(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.progress, id)
}

// snapshot copies r for a delayed update (the core keeps changing r).
func snapshot(r *approval.Request) *approval.Request {
	c := *r
	c.Targets = slices.Clone(r.Targets)
	c.Approvals = slices.Clone(r.Approvals)
	return &c
}

// progressPosted notes that r's table was just posted (the first update
// then waits its turn like any other).
func (s *Service) progressPosted(r *approval.Request) {
	pt := s.progressOf(r.ID)
	pt.mu.Lock()
	pt.last = s.now()
	pt.mu.Unlock()
	if r.TargetsDone() {
		s.dropProgress(r.ID)
	}
}

// updateProgress updates r's posted progress table, throttled.
func (s *Service) updateProgress(ctx context.Context, r *approval.Request) {
	pt := s.progressOf(r.ID)
	final := r.TargetsDone()
	pt.mu.Lock()
	pt.seq++
	seq := pt.seq
	if final || (pt.stop == nil && !pt.busy && !s.now().Before(pt.last.Add(s.cfg.ProgressEvery))) {
		if pt.stop != nil {
			pt.stop() // this state is newer than the one waiting
		}
		pt.stop, pt.pending, pt.busy = nil, nil, true
		pt.last = s.now()
		pt.mu.Unlock()
		s.sendProgress(ctx, pt, r, seq)
		if final {
			s.dropProgress(r.ID)
		}
		return
	}
	pt.pending, pt.pendSeq = snapshot(r), seq
	if pt.stop != nil {
		pt.mu.Unlock()
		return // the delayed update already waiting sends this newer state
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	pt.stop = stop
	pt.mu.Unlock()
	s.goDetached(ctx, "progress table", s.cfg.ProgressEvery+time.Minute, func(ctx context.Context) {
		defer stop()
		for {
			pt.mu.Lock()
			if wctx.Err() != nil {
				pt.mu.Unlock()
				return // a newer state was sent meanwhile
			}
			// Measured from the answer to the last update (it may have come
			// after this wait began); one still being sent: wait again.
			until := pt.last.Add(s.cfg.ProgressEvery)
			if pt.busy {
				until = s.now().Add(s.cfg.ProgressEvery)
			}
			if !s.now().Before(until) {
				p, seq := pt.pending, pt.pendSeq
				pt.stop, pt.pending, pt.busy = nil, nil, true
				pt.last = s.now()
				pt.mu.Unlock()
				s.sendProgress(ctx, pt, p, seq)
				return
			}
			pt.mu.Unlock()
			_ = s.waitProgress(wctx, until) // cancelled: checked above
		}
	})
}

// sendProgress updates the table to r, state number seq, unless a newer
// state was sent already; the interval then counts from the answer.
func (s *Service) sendProgress(ctx context.Context, pt *progressTable, r *approval.Request, seq int) {
	pt.send.Lock()
	defer pt.send.Unlock()
	defer func() {
		pt.mu.Lock()
		if now := s.now(); now.After(pt.last) {
			pt.last = now
		}
		pt.busy = false
		pt.mu.Unlock()
	}()
	if seq <= pt.sent {
		return
	}
	pt.sent = seq
	text, blocks := renderProgress(r)
	err := s.slackRetry(ctx, func() error {
		_, _, _, err := s.deps.Slack.UpdateMessageContext(ctx, r.ApprovalChannel, r.ProgressTS,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "chat.update of the progress table failed", "request", r.ID, "error", err)
	}
}
