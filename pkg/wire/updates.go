package wire

// Kiosk apps and agent versions the hub assigns to a kiosk (its rollouts), and how they went.
// The hub puts UpdateTargets in the kiosk's desired state (keys "bundles" and "agent"); the
// agent (agent/bundles) installs them and reports UpdateStatus in its reported state (key
// "updates"), and each outcome as a business record of kind KindBundleEvent.

// KindBundleEvent is the kind of a record whose body is BundleEvent.
const KindBundleEvent = "bundle.event"

// UpdateTargets is what the hub wants installed: app -> version, and the agent's version.
type UpdateTargets struct {
	Bundles map[string]string `json:"bundles,omitempty"`
	Agent   string            `json:"agent,omitempty"`
}

// UpdateStatus is what a kiosk reports of its apps and its agent.
type UpdateStatus struct {
	Bundles map[string]BundleStatus `json:"bundles,omitempty"`
	Agent   AgentStatus             `json:"agent"`
}

// BundleStatus is where one app stands at a kiosk.
type BundleStatus struct {
	Active string `json:"active,omitempty"` // the version installed and working
	Want   string `json:"want,omitempty"`   // the version the hub asked for
	State  string `json:"state"`            // one of the Bundle* states
	Failed string `json:"failed,omitempty"` // the version that failed or was refused
	Error  string `json:"error,omitempty"`
	At     int64  `json:"at"` // device clock, Unix ms, of the last change
}

// Bundle states. pending, downloading, staged and waiting-idle are on the way; active is done;
// failed (rolled back after its health check) and refused (by the update framework, or not
// runnable here) are final for that version.
const (
	BundlePending     = "pending"
	BundleDownloading = "downloading"
	BundleStaged      = "staged"
	BundleWaitingIdle = "waiting-idle" // for the citizen at the kiosk to finish
	BundleActive      = "active"
	BundleFailed      = "failed"
	BundleRefused     = "refused"
)

// AgentStatus is where the agent's own update stands.
type AgentStatus struct {
	Running string `json:"running,omitempty"` // the version running now
	Want    string `json:"want,omitempty"`
	Staged  string `json:"staged,omitempty"` // fetched and verified, switched to at the next restart
	Failed  string `json:"failed,omitempty"` // a version that did not come up healthy: the launcher went back
	Error   string `json:"error,omitempty"`
}

// BundleEvent is the body of a bundle.event record.
type BundleEvent struct {
	App     string `json:"app"` // "kiosk-agent" for the agent itself
	Version string `json:"version"`
	Event   string `json:"event"`          // activated, rolled-back, refused, staged, fell-back
	From    string `json:"from,omitempty"` // the version before
	Error   string `json:"error,omitempty"`
	At      int64  `json:"at"` // device clock, Unix ms
}

// Bundle events.
const (
	BundleActivated  = "activated"
	BundleRolledBack = "rolled-back"
	BundleFellBack   = "fell-back" // the agent: the new binary failed, the previous one runs
	BundleStagedEvt  = "staged"
)
