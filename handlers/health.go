package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

var (
	errNilCheck      = errors.New("readiness check has no function")
	errCheckPanicked = errors.New("readiness check panicked")
)

// readyz runs every readiness check concurrently, each with its own timeout.
// The response names failed checks only: errors go to the log, never to the
// caller, so no connection string or token detail can leak.
func (h *handler) readyz(c *gin.Context) {
	ctx := c.Request.Context()
	failed := make([]bool, len(h.ready))
	var wg sync.WaitGroup
	for i, rc := range h.ready {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, h.cfg.ReadyTimeout)
			defer cancel()
			if err := safeCheck(cctx, rc); err != nil {
				failed[i] = true
				h.log.WarnContext(ctx, "readiness check failed", slog.String("check", rc.Name), slog.Any("error", err))
			}
		})
	}
	wg.Wait()

	checks := make(map[string]string, len(h.ready))
	var names []string
	for i, rc := range h.ready {
		if failed[i] {
			checks[rc.Name] = "failed"
			names = append(names, rc.Name)
		} else {
			checks[rc.Name] = "ok"
		}
	}
	h.metrics.Ready(len(names) == 0)
	if len(names) > 0 {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "failed": names, "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

// safeCheck runs one check, treating a nil func or a panic as a failure.
func safeCheck(ctx context.Context, rc ReadinessCheck) (err error) {
	if rc.Check == nil {
		return errNilCheck
	}
	defer func() {
		if r := recover(); r != nil {
			err = errCheckPanicked
		}
	}()
	return rc.Check(ctx)
}
