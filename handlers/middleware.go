package handlers

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/defenderbot/defenderbot/internal/logctx"
)

// withLogctx makes sure every line logged with a request's context carries
// its request ID, without wrapping a logger that already does.
func withLogctx(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*logctx.Handler); ok {
		return l
	}
	return slog.New(logctx.NewHandler(l.Handler()))
}

// validRequestID accepts a caller's X-Request-ID only if it is short and
// plain, so it cannot forge log lines.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r == '-' || r == '_' || r == '.' || r == ':' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// requestLogger gives every request an ID (the caller's X-Request-ID when
// sane, else a new UUID), stores it in the request context and the response
// header, and logs one line per request.
func requestLogger(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader(requestIDHeader)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Request = c.Request.WithContext(logctx.WithRequestID(c.Request.Context(), id))
		c.Header(requestIDHeader, id)

		c.Next()

		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		case c.Request.URL.Path == "/healthz" || c.Request.URL.Path == "/readyz" || c.Request.URL.Path == "/metrics":
			// Probes run every few seconds; keep them out of the info log.
			level = slog.LevelDebug
		}
		log.LogAttrs(c.Request.Context(), level, "http request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
		)
	}
}

// recovery turns a panic in a handler into a 500 and an error log line, so
// one bad request never takes the process down.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		log.ErrorContext(c.Request.Context(), "panic while handling request",
			slog.String("path", c.Request.URL.Path),
			slog.Any("panic", err),
		)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	})
}
