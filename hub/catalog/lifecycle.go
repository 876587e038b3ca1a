package catalog

import (
	"slices"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Staff roles, as the OpenID Provider (hub/identity) gives them. Admin may do everything.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer" // of one department
	RoleReviewer  = "reviewer"
	RoleOperator  = "operator"
)

// Rule is one allowed transition of the lifecycle: who may move an app version from one state to
// another, for the version as a whole or for one channel, and whether they must say why.
type Rule struct {
	From, To string
	Role     string // who, besides admin; a developer only within its department
	Channel  bool   // the version's state on one channel, not the version's own
	Reason   bool   // a reason is required
}

// Rules is the lifecycle of an app version, every allowed transition in one table (docs/catalog.md
// shows it). Anything else is refused.
//
// Two transitions carry effects on other states, applied in the same transaction:
//   - listing a version on a channel delists the version of the same app listed there before
//     ("superseded by ..."): a channel lists one version of an app at a time;
//   - retiring a version moves it to retired on every channel it reached.
var Rules = []Rule{
	{From: api.StateDraft, To: api.StateSubmitted, Role: RoleDeveloper},                             // submit for review
	{From: api.StateSubmitted, To: api.StateDraft, Role: RoleDeveloper},                             // withdraw
	{From: api.StateRejected, To: api.StateDraft, Role: RoleDeveloper},                              // revise
	{From: api.StateSubmitted, To: api.StateApproved, Role: RoleReviewer},                           // approve
	{From: api.StateSubmitted, To: api.StateRejected, Role: RoleReviewer, Reason: true},             // reject
	{From: api.StateApproved, To: api.StatePublished, Role: RoleOperator, Channel: true},            // publish on a channel
	{From: api.StatePublished, To: api.StateListed, Role: RoleOperator, Channel: true},              // list
	{From: api.StateListed, To: api.StateDelisted, Role: RoleOperator, Channel: true, Reason: true}, // delist
	{From: api.StateDelisted, To: api.StateListed, Role: RoleOperator, Channel: true},               // list again
	{From: api.StateApproved, To: api.StateRetired, Role: RoleOperator, Reason: true},               // retire everywhere
}

// rule returns the rule for from -> to at the version's level (channel false) or on a channel.
func rule(from, to string, channel bool) (Rule, bool) {
	i := slices.IndexFunc(Rules, func(r Rule) bool { return r.From == from && r.To == to && r.Channel == channel })
	if i < 0 {
		return Rule{}, false
	}
	return Rules[i], true
}

// next lists the states a version may move to from from (on a channel, or not).
func next(from string, channel bool) []string {
	var out []string
	for _, r := range Rules {
		if r.From == from && r.Channel == channel {
			out = append(out, r.To)
		}
	}
	return out
}

// channelState is a version's state on a channel: its release's there, or its own while it has
// none (store.Catalog).
func channelState(versionState string, releases map[string]string, channel string) string {
	if s, ok := releases[channel]; ok {
		return s
	}
	return versionState
}
