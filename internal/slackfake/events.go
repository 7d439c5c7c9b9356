package slackfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// EnvelopeEventsAPI is the Socket Mode envelope type of an Events API event.
const EnvelopeEventsAPI = "events_api"

// SignedJSONRequest builds a JSON POST (the Events API's) to target, signed
// like Slack signs it.
func SignedJSONRequest(ctx context.Context, target, secret string, at time.Time, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	ts, sig := Sign(secret, at, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	return req, nil
}

// URLVerification is the body Slack posts to check an Events API request URL.
func URLVerification(challenge string) []byte {
	b, _ := json.Marshal(map[string]string{"token": "deprecated-verification-token", "challenge": challenge, "type": "url_verification"})
	return b
}

// EventCallback wraps an inner event as Slack delivers it (event_callback),
// under eventID.
func EventCallback(eventID string, event any) map[string]any {
	return map[string]any{
		"token": "deprecated-verification-token", "team_id": "T0FAKE", "api_app_id": "A0FAKE",
		"event": event, "type": "event_callback", "event_id": eventID, "event_time": time.Now().Unix(),
		"authorizations": []map[string]any{{"team_id": "T0FAKE", "user_id": "U0BOT", "is_bot": true}},
	}
}

// AppHomeOpened is the event_callback (as JSON) of user opening the app's
// Home tab.
func AppHomeOpened(eventID, user string) []byte {
	b, _ := json.Marshal(EventCallback(eventID, map[string]any{
		"type": "app_home_opened", "user": user, "channel": "D0" + user, "tab": "home",
		"event_ts": fmt.Sprintf("%d.000100", time.Now().Unix()),
	}))
	return b
}
