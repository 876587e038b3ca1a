package devices

import "github.com/kioskfleet/kioskfleet/drivers/profile"

// DefaultOpeners returns the drivers built into the agent, by profile driver name.
func DefaultOpeners() map[profile.Driver]Opener {
	return map[profile.Driver]Opener{}
}
