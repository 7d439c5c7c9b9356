package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// explainDefenderError turns a Defender error into plain words saying what to
// do next. It never includes secrets: APIError carries only Microsoft's code
// and message.
func explainDefenderError(err error, action actions.Name) string {
	var ae *defender.APIError
	switch {
	case errors.Is(err, defender.ErrInvalidArgument):
		return "Defender rejected the arguments: " + err.Error()
	case errors.Is(err, defender.ErrOutcomeUnknown):
		return "The outcome is unknown: Defender did not answer and the action was not found afterwards. Check the Action center in the Defender portal before asking again."
	case errors.Is(err, defender.ErrAuthentication):
		return "defenderbot could not obtain a Defender token: check the Azure app's tenant ID, app ID and secret (and that the secret has not expired)."
	case errors.Is(err, context.DeadlineExceeded):
		return "Defender did not answer in time; the outcome is unknown. Check the Action center in the Defender portal before asking again."
	case defender.IsActiveRequestAlreadyExists(err):
		return "An action of this type is already pending on this machine: wait for it to finish, or cancel it with `/defender cancel <action-id> <comment>` (find the ID in the Action center)."
	case defender.IsNotFound(err):
		what := "machine"
		if spec, ok := action.Spec(); ok {
			what = targetWord(spec)
			if spec.Target == actions.TargetMachineAction {
				what = "machine action"
			}
		}
		return fmt.Sprintf("Defender says the %s was not found: check the ID in the Defender portal.", what)
	case defender.IsForbidden(err):
		return fmt.Sprintf("Defender refused: the Azure app lacks the permission %s (or the device group is out of its reach). Grant it in Entra ID under API permissions > WindowsDefenderATP and grant admin consent.", action.Permission())
	case defender.IsUnauthorized(err):
		return "Defender did not accept defenderbot's token: check the Azure app registration and its admin consent."
	case defender.IsRateLimited(err):
		msg := "Defender is throttling requests (429): try again"
		if d := defender.RetryAfterOf(err); d > 0 {
			return fmt.Sprintf("%s in %s.", msg, d.Round(1e9))
		}
		return msg + " in a minute."
	case errors.As(err, &ae) && ae.StatusCode >= 500:
		return fmt.Sprintf("Defender had an internal error (%d): try again later. If it persists, check the Microsoft 365 service health.", ae.StatusCode)
	case errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest:
		msg := "Defender rejected the request (400)"
		if ae.Code != "" {
			msg += " " + ae.Code
		}
		if ae.Message != "" {
			msg += ": " + ae.Message
		}
		return msg
	case errors.As(err, &ae):
		return fmt.Sprintf("Defender answered %d %s: %s", ae.StatusCode, ae.Code, ae.Message)
	}
	// The transport detail (URLs, addresses) goes to the log, not to Slack.
	return "The call to Defender failed and its outcome is unknown (the details are in defenderbot's log). Check the Action center in the Defender portal before asking again."
}
