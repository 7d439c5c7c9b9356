package bot

import (
	"context"

	"github.com/defenderbot/defenderbot/actions"
	"github.com/defenderbot/defenderbot/defender"
)

// MachineFinder is the part of *defender.Client the bot uses besides the
// actions actions.
type MachineFinder interface {
	GetMachine(ctx context.Context, id string) (*defender.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]defender.Machine, error)
	GetMachineAction(ctx context.Context, id string) (*defender.MachineAction, error)
	ListMachineActions(ctx context.Context, o defender.MachineActionListOptions) ([]defender.MachineAction, error)
}

// NewDefender adapts the actions runner and the Defender client (which
// satisfies MachineFinder) to the bot's Defender interface.
func NewDefender(runner *actions.Runner, client MachineFinder) Defender {
	return &defenderAdapter{runner: runner, MachineFinder: client}
}

type defenderAdapter struct {
	runner *actions.Runner
	MachineFinder
}

func (d *defenderAdapter) Run(ctx context.Context, n actions.Name, a actions.Args) (*actions.Result, error) {
	return d.runner.Run(ctx, n, a)
}

func (d *defenderAdapter) ListMachineActions(ctx context.Context, machineID, actionType string) ([]defender.MachineAction, error) {
	return d.MachineFinder.ListMachineActions(ctx, defender.MachineActionListOptions{MachineID: machineID, Type: actionType, Top: 50})
}
