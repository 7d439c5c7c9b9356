package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack/slackevents"
)

// Events receives Events API callbacks (*bot.Service satisfies it). It must
// return quickly: Slack wants the acknowledgement within 3 s and retries
// otherwise.
type Events interface {
	HandleEvent(ctx context.Context, ev slackevents.EventsAPIEvent)
}

// eventKey is the replay key of an Events API callback: Slack retries an
// event with a new signature but the same event_id.
func eventKey(eventID string) string { return "slack-event:" + eventID }

// events serves POST /slack/events: url_verification is answered with its
// challenge, event callbacks are verified, deduplicated (by signature and by
// event_id) and handed to deps.Events.
func (h *handler) events(c *gin.Context) string {
	ctx := c.Request.Context()
	if h.seen == nil {
		h.log.ErrorContext(ctx, "slack events endpoint not wired (missing replay store)")
		return abort(c, outcomeError, http.StatusServiceUnavailable, "service not ready")
	}
	body, err := readVerified(c.Request, h.cfg.SigningSecret, max(h.cfg.MaxBodyBytes, h.cfg.MaxEventBodyBytes))
	switch {
	case errors.Is(err, errBodyTooLarge):
		return abort(c, outcomeBadRequest, http.StatusRequestEntityTooLarge, "request body too large")
	case err != nil:
		h.log.WarnContext(ctx, "slack request refused", slog.String("route", routeEvents), slog.String("reason", err.Error()))
		return abort(c, outcomeUnauthorized, http.StatusUnauthorized, "invalid Slack signature")
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "expected a JSON body")
	}
	// The signature stands in for the deprecated verification token.
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "malformed event")
	}
	switch ev.Type {
	case slackevents.URLVerification:
		uv, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent)
		if !ok || uv.Challenge == "" {
			return abort(c, outcomeBadRequest, http.StatusBadRequest, "url_verification without a challenge")
		}
		c.JSON(http.StatusOK, gin.H{"challenge": uv.Challenge})
		return outcomeOK
	case slackevents.CallbackEvent:
	default:
		// app_rate_limited and anything else: acknowledge, do nothing.
		c.Status(http.StatusOK)
		return outcomeIgnored
	}
	cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent)
	if !ok || cb.EventID == "" {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "event callback without an event_id")
	}
	if outcome := h.firstTime(c, routeEvents, ReplayKey(c.GetHeader(headerTimestamp), c.GetHeader(headerSignature))); outcome != "" {
		return outcome
	}
	if outcome := h.firstTime(c, routeEvents, eventKey(cb.EventID)); outcome != "" {
		// A retry of an event already handled: the 200 stops Slack retrying.
		return outcome
	}
	return h.dispatchEvent(c, ev)
}

func (h *handler) dispatchEvent(c *gin.Context, ev slackevents.EventsAPIEvent) string {
	if h.evts == nil {
		c.Status(http.StatusOK)
		return outcomeIgnored
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.AckTimeout)
	defer cancel()
	h.evts.HandleEvent(ctx, ev)
	c.Status(http.StatusOK)
	return outcomeOK
}
