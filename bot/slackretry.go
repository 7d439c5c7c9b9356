package bot

import (
	"context"
	"errors"
	"time"

	"github.com/slack-go/slack"
)

// slackAttempts bounds retries of one Slack call after 429 responses.
const slackAttempts = 3

// maxSlackWait caps one Retry-After wait so a stuck call cannot hold a
// goroutine for Slack's default 60 s.
const maxSlackWait = 30 * time.Second

// slackRetry runs call, retrying after Slack's Retry-After (waited with the
// injected sleep) when Slack answers 429 (slack-go returns
// *slack.RateLimitedError). Other errors and ctx cancellation end it at once.
func (s *Service) slackRetry(ctx context.Context, call func() error) error {
	return slackRetry(ctx, s.sleep, call)
}

// slackRetry is Service.slackRetry for callers outside a Service (the
// alert poster), waiting with sleep.
func slackRetry(ctx context.Context, sleep func(context.Context, time.Duration) error, call func() error) error {
	var err error
	for attempt := 0; attempt < slackAttempts; attempt++ {
		err = call()
		var rl *slack.RateLimitedError
		if err == nil || !errors.As(err, &rl) || attempt == slackAttempts-1 {
			return err
		}
		if serr := sleep(ctx, min(max(rl.RetryAfter, 100*time.Millisecond), maxSlackWait)); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}
