package defender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// GetMachine returns a device by its Defender id (or computer name, which
// Microsoft also accepts here).
//
// API: GET /api/machines/{id}
func (c *Client) GetMachine(ctx context.Context, machineID string) (*Machine, error) {
	if err := validateID("machine id", machineID); err != nil {
		return nil, err
	}
	var m Machine
	if _, err := c.do(ctx, &call{api: APIMachines, method: "GET", path: "/api/machines/" + url.PathEscape(machineID)}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// FindMachinesByName returns the devices whose computerDnsName equals name
// (lower-cased, as Defender stores it). If none does, it returns those whose
// name starts with "name." so a short host name finds its FQDN. Several
// records can match (re-onboarded devices); none is not an error.
//
// API: GET /api/machines?$filter=computerDnsName eq '...'
func (c *Client) FindMachinesByName(ctx context.Context, computerDNSName string) ([]Machine, error) {
	name := strings.ToLower(strings.TrimSpace(computerDNSName))
	if err := validateID("computer name", name); err != nil {
		return nil, err
	}
	if strings.ContainsAny(name, "'\"()*,;") {
		return nil, invalid("computer name", "%q is not a host name", computerDNSName)
	}
	ms, err := c.listMachines(ctx, "computerDnsName eq "+odataString(name))
	if err != nil || len(ms) > 0 {
		return ms, err
	}
	return c.listMachines(ctx, "startswith(computerDnsName,"+odataString(name+".")+")")
}

func (c *Client) listMachines(ctx context.Context, filter string) ([]Machine, error) {
	raws, err := c.list(ctx, APIMachines, "/api/machines", filter, 0, 0, true)
	if err != nil {
		return nil, err
	}
	out := make([]Machine, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, fmt.Errorf("defender: GET /api/machines: decoding item %d: %w", i, err)
		}
	}
	return out, nil
}
