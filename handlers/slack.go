package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"
)

const (
	headerSignature = "X-Slack-Signature"
	headerTimestamp = "X-Slack-Request-Timestamp"
)

// errBodyTooLarge is returned by readVerified for a body over the limit.
var errBodyTooLarge = errors.New("request body too large")

// ReplayKey is the fingerprint under which a signed Slack request is
// remembered: a replay carries the same timestamp and signature. The
// signature is lower-cased because the verifier decodes its hex, so an
// upper- or mixed-case spelling of a captured signature verifies too and
// must not count as a new request. (The timestamp needs no such care: it is
// signed as written.)
func ReplayKey(timestamp, signature string) string {
	sum := sha256.Sum256([]byte("v0:" + timestamp + ":" + strings.ToLower(signature)))
	return "slack:" + hex.EncodeToString(sum[:])
}

// readVerified reads the raw body (at most max bytes) through Slack's
// signature verifier and returns it only if the signature holds. Nothing
// parses the body before this returns nil.
func readVerified(r *http.Request, secret string, max int64) ([]byte, error) {
	v, err := slack.NewSecretsVerifier(r.Header, secret)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.TeeReader(io.LimitReader(r.Body, max+1), &v))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, errBodyTooLarge
	}
	if err := v.Ensure(); err != nil {
		return nil, err
	}
	return body, nil
}

// slackRoute wraps a Slack endpoint so that each request is counted with
// its outcome and acknowledgement latency.
func (h *handler) slackRoute(route string, fn func(c *gin.Context) (outcome string)) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		outcome := fn(c)
		h.metrics.SlackRequest(route, outcome, time.Since(start))
	}
}

// slackRequest is the common front half of both Slack endpoints: verify,
// then check the body is a form. When outcome is not empty a response was
// written and the request is over.
func (h *handler) slackRequest(c *gin.Context, route string) (key, outcome string) {
	ctx := c.Request.Context()
	if h.bot == nil || h.seen == nil {
		h.log.ErrorContext(ctx, "slack endpoint not wired (missing bot or replay store)")
		return "", abort(c, outcomeError, http.StatusServiceUnavailable, "service not ready")
	}
	body, err := readVerified(c.Request, h.cfg.SigningSecret, h.cfg.MaxBodyBytes)
	switch {
	case errors.Is(err, errBodyTooLarge):
		return "", abort(c, outcomeBadRequest, http.StatusRequestEntityTooLarge, "request body too large")
	case err != nil:
		// The reason is safe to log: slack-go's errors never contain the
		// secret or a computed signature.
		h.log.WarnContext(ctx, "slack request refused", slog.String("route", route), slog.String("reason", err.Error()))
		return "", abort(c, outcomeUnauthorized, http.StatusUnauthorized, "invalid Slack signature")
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return "", abort(c, outcomeBadRequest, http.StatusBadRequest, "expected a form-encoded body")
	}
	// Parsers read the body again from the verified bytes.
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return ReplayKey(c.GetHeader(headerTimestamp), c.GetHeader(headerSignature)), ""
}

// firstTime records key; when this is not its first delivery (or the check
// failed) it writes the response and returns the outcome.
func (h *handler) firstTime(c *gin.Context, route, key string) (outcome string) {
	ctx := c.Request.Context()
	first, err := h.seen.MarkSeen(ctx, key, h.now(), h.cfg.ReplayTTL)
	if err != nil {
		h.log.ErrorContext(ctx, "replay check failed", slog.Any("error", err))
		return abort(c, outcomeError, http.StatusServiceUnavailable, "temporarily unavailable, try again")
	}
	if !first {
		h.log.WarnContext(ctx, "replayed slack request ignored", slog.String("route", route))
		c.Status(http.StatusOK)
		return outcomeReplay
	}
	return ""
}

// abort writes a short JSON error and returns outcome.
func abort(c *gin.Context, outcome string, status int, msg string) string {
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
	return outcome
}

func (h *handler) slashCommand(c *gin.Context) string {
	key, outcome := h.slackRequest(c, routeCommands)
	if outcome != "" {
		return outcome
	}
	cmd, err := slack.SlashCommandParse(c.Request)
	if err != nil {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "malformed slash command form")
	}
	if cmd.Command == "" || cmd.UserID == "" {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "slash command without command or user_id")
	}
	if outcome := h.firstTime(c, routeCommands, key); outcome != "" {
		return outcome
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.AckTimeout)
	defer cancel()
	msg := h.bot.HandleCommand(ctx, cmd)
	if msg == nil {
		c.Status(http.StatusOK)
	} else {
		c.JSON(http.StatusOK, msg)
	}
	return outcomeOK
}

func (h *handler) interaction(c *gin.Context) string {
	key, outcome := h.slackRequest(c, routeInteractions)
	if outcome != "" {
		return outcome
	}
	ic, err := slack.InteractionCallbackParse(c.Request)
	if err != nil {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "malformed interaction payload")
	}
	switch ic.Type {
	case slack.InteractionTypeBlockActions, slack.InteractionTypeViewSubmission:
	default:
		// view_closed and anything else we never asked for: acknowledge, do nothing.
		c.Status(http.StatusOK)
		return outcomeIgnored
	}
	if ic.User.ID == "" {
		return abort(c, outcomeBadRequest, http.StatusBadRequest, "interaction without a user")
	}
	if outcome := h.firstTime(c, routeInteractions, key); outcome != "" {
		return outcome
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.AckTimeout)
	defer cancel()
	resp, err := h.bot.HandleInteraction(ctx, ic)
	if err != nil {
		h.log.ErrorContext(ctx, "interaction failed", slog.String("type", string(ic.Type)), slog.Any("error", err))
		return abort(c, outcomeError, http.StatusInternalServerError, "internal error")
	}
	if isNil(resp) {
		c.Status(http.StatusOK)
	} else {
		c.JSON(http.StatusOK, resp)
	}
	return outcomeOK
}

// isNil reports whether v is nil or a typed nil pointer (a bot returning a
// nil *slack.ViewSubmissionResponse means "empty 200" too).
func isNil(v any) bool {
	if v == nil {
		return true
	}
	if r, ok := v.(*slack.ViewSubmissionResponse); ok {
		return r == nil
	}
	return false
}
