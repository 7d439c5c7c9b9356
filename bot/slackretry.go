package bot

import (
	"context"
	"errors"
	"time"

	"github.com/slack-go/slack"
)

// SlackRetry bounds the retries of one Slack call answered 429: Attempts
// in all, each Retry-After wait capped at MaxWait so a stuck call cannot
// hold a goroutine for Slack's default 60 s (SlackRetryFrom: config's values).
type SlackRetry struct {
	Attempts int
	MaxWait  time.Duration
}

// check names a missing bound.
func (r SlackRetry) check() error {
	if r.Attempts < 1 || r.MaxWait <= 0 {
		return errors.New("SlackRetry.Attempts and MaxWait must be positive")
	}
	return nil
}

// slackRetry runs call, retrying after Slack's Retry-After (waited with the
// injected sleep) when Slack answers 429 (slack-go returns
// *slack.RateLimitedError). Other errors and ctx cancellation end it at once.
func (s *Service) slackRetry(ctx context.Context, call func() error) error {
	return slackRetry(ctx, s.sleep, s.cfg.SlackRetry, call)
}

// slackRetry is Service.slackRetry for callers outside a Service (the
// alert poster), waiting with sleep.
func slackRetry(ctx context.Context, sleep func(context.Context, time.Duration) error, limit SlackRetry, call func() error) error {
	var err error
	for attempt := 0; attempt < limit.Attempts; attempt++ {
		err = call()
		var rl *slack.RateLimitedError
		if err == nil || !errors.As(err, &rl) || attempt == limit.Attempts-1 {
			return err
		}
		if serr := sleep(ctx, min(max(rl.RetryAfter, 100*time.Millisecond), limit.MaxWait)); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}
