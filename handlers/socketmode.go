package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/defenderbot/defenderbot/internal/logctx"
)

// RunSocketMode connects client to Slack over Socket Mode and feeds slash
// commands and interactions into deps.Bot, and events into deps.Events, the same methods the HTTP
// endpoints use, with the same replay protection (keyed by envelope_id,
// since Socket Mode has no request signature: the app token authenticates
// the connection). Each envelope is acknowledged as soon as the bot's fast
// part returns, carrying its reply. It returns nil when ctx is cancelled,
// after in-flight envelopes are acknowledged, or the connection error.
func RunSocketMode(ctx context.Context, client *socketmode.Client, cfg Config, deps Deps) error {
	if client == nil || deps.Bot == nil || deps.Seen == nil {
		return errors.New("socket mode: client, bot and replay store are required")
	}
	h, err := newHandler(cfg, deps)
	if err != nil {
		return fmt.Errorf("socket mode: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(ctx) }()

	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("socket mode: %w", err)
		case evt := <-client.Events:
			switch evt.Type {
			case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
				inflight.Go(func() { h.socketEnvelope(ctx, client, evt) })
			case socketmode.EventTypeConnecting:
				h.log.InfoContext(ctx, "socket mode connecting")
			case socketmode.EventTypeConnected:
				h.log.InfoContext(ctx, "socket mode connected")
			case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage:
				h.log.WarnContext(ctx, "socket mode connection problem", slog.String("event", string(evt.Type)), slog.Any("detail", errorDetail(evt.Data)))
			case socketmode.EventTypeInvalidAuth:
				h.log.ErrorContext(ctx, "socket mode authentication failed: check slack.app_token (connections:write)")
			default:
				h.log.DebugContext(ctx, "socket mode event", slog.String("event", string(evt.Type)))
			}
		}
	}
}

// errorDetail keeps only the error text of an event's data.
func errorDetail(data any) string {
	if err, ok := data.(error); ok {
		return err.Error()
	}
	return ""
}

// socketEnvelope handles one envelope end to end: replay check, bot, ack.
func (h *handler) socketEnvelope(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	start := time.Now()
	req := evt.Request
	if req == nil || req.EnvelopeID == "" {
		return
	}
	ctx = logctx.WithRequestID(ctx, req.EnvelopeID)
	route := routeSocketInteractive
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		route = routeSocketCommands
	case socketmode.EventTypeEventsAPI:
		route = routeSocketEvents
	}
	outcome := outcomeOK
	defer func() { h.metrics.SlackRequest(route, outcome, time.Since(start)) }()
	ack := func(payload ...any) {
		if err := client.Ack(*req, payload...); err != nil {
			h.log.ErrorContext(ctx, "socket mode ack failed", slog.Any("error", err))
		}
	}

	var (
		cmd     slack.SlashCommand
		ic      slack.InteractionCallback
		ev      slackevents.EventsAPIEvent
		eventID string
	)
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		var ok bool
		if cmd, ok = evt.Data.(slack.SlashCommand); !ok || cmd.Command == "" || cmd.UserID == "" {
			outcome = outcomeBadRequest
			ack()
			return
		}
	case socketmode.EventTypeInteractive:
		var ok bool
		ic, ok = evt.Data.(slack.InteractionCallback)
		if !ok || ic.User.ID == "" {
			outcome = outcomeBadRequest
			ack()
			return
		}
		if ic.Type != slack.InteractionTypeBlockActions && ic.Type != slack.InteractionTypeViewSubmission {
			outcome = outcomeIgnored
			ack()
			return
		}
	case socketmode.EventTypeEventsAPI:
		var ok bool
		ev, ok = evt.Data.(slackevents.EventsAPIEvent)
		if !ok {
			outcome = outcomeBadRequest
			ack()
			return
		}
		cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent)
		if ev.Type != slackevents.CallbackEvent || !ok || cb.EventID == "" || h.evts == nil {
			outcome = outcomeIgnored
			ack()
			return
		}
		eventID = cb.EventID
	default:
		outcome = outcomeIgnored
		ack()
		return
	}

	first, err := h.seen.MarkSeen(ctx, "socket:"+req.EnvelopeID, h.now(), h.cfg.ReplayTTL)
	if err != nil {
		// No ack: Slack redelivers, and by then the store may be back.
		h.log.ErrorContext(ctx, "replay check failed", slog.Any("error", err))
		outcome = outcomeError
		return
	}
	if !first {
		h.log.WarnContext(ctx, "redelivered socket mode envelope ignored")
		outcome = outcomeReplay
		ack()
		return
	}

	if eventID != "" {
		// Slack retries an event under a new envelope: the event_id is what
		// stays the same (and what the HTTP endpoint deduplicates on too).
		first, err := h.seen.MarkSeen(ctx, eventKey(eventID), h.now(), h.cfg.ReplayTTL)
		if err != nil {
			h.log.ErrorContext(ctx, "replay check failed", slog.Any("error", err))
			outcome = outcomeError
			return
		}
		if !first {
			outcome = outcomeReplay
			ack()
			return
		}
	}

	bctx, cancel := context.WithTimeout(ctx, h.cfg.AckTimeout)
	defer cancel()
	if evt.Type == socketmode.EventTypeEventsAPI {
		h.evts.HandleEvent(bctx, ev)
		ack()
		return
	}
	if evt.Type == socketmode.EventTypeSlashCommand {
		msg := h.bot.HandleCommand(bctx, cmd)
		if msg == nil {
			ack()
			return
		}
		ack(msg)
		return
	}
	resp, err := h.bot.HandleInteraction(bctx, ic)
	if err != nil {
		h.log.ErrorContext(ctx, "interaction failed", slog.Any("error", err))
		outcome = outcomeError
		ack()
		return
	}
	if isNil(resp) {
		ack()
		return
	}
	ack(resp)
}
