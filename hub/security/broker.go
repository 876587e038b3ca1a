package security

import "github.com/kioskfleet/kioskfleet/hub/broker"

// brokerKinds are the broker's refusals for cause and their kinds. The others (load, limits,
// timeouts, malformed packets) are the broker's metrics only: they say the hub is busy or a
// client is broken, not that someone is where they should not be.
var brokerKinds = map[broker.Reason]string{
	broker.ReasonACLDenied:      ACLDenied,
	broker.ReasonConnectRefused: ConnectRefused,
	broker.ReasonTLS:            TLSRefused,
	broker.ReasonCertRefused:    CertRefused,
	broker.ReasonRevoked:        SessionCut,
}

// NoteBroker counts a broker refusal for cause (broker.Config.OnReject).
func (r *Recorder) NoteBroker(rj broker.Rejection) {
	if kind, ok := brokerKinds[rj.Reason]; ok {
		r.Note(kind, rj.DeviceID, "", rj.Remote, rj.Detail)
	}
}
