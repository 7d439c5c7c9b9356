package bot

import (
	"context"
	"fmt"

	"github.com/defenderbot/defenderbot/defender"
	"github.com/defenderbot/defenderbot/playbook"
)

// MachineFinder is the part of *defender.Client the bot uses besides the
// playbook actions.
type MachineFinder interface {
	GetMachine(ctx context.Context, id string) (*defender.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error)
	GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error)
	ListMachineActions(ctx context.Context, o defender.MachineActionListOptions) ([]defender.MachineAction, error)
}

// NewDefender adapts the playbook runner and the Defender client (which
// satisfies MachineFinder) to the bot's Defender interface.
func NewDefender(runner *playbook.Runner, client MachineFinder) Defender {
	return &defenderAdapter{runner: runner, MachineFinder: client}
}

type defenderAdapter struct {
	runner *playbook.Runner
	MachineFinder
}

func (d *defenderAdapter) Run(ctx context.Context, action string, params map[string]string) (*playbook.Result, error) {
	n, ok := playbook.Lookup(action)
	if !ok {
		return nil, fmt.Errorf("unknown playbook action %q: %w", action, defender.ErrInvalidArgument)
	}
	return d.runner.Run(ctx, n, playbook.ArgsFromMap(params))
}

func (d *defenderAdapter) ListMachineActions(ctx context.Context, machineID, actionType string) ([]defender.MachineAction, error) {
	return d.MachineFinder.ListMachineActions(ctx, defender.MachineActionListOptions{MachineID: machineID, Type: actionType, Top: 50})
}
