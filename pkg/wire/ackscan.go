package wire

// fastAck is DecodeAck's fast path, the agent's hot path (an ack for every batch it sends; the
// general decoder cost a fleet simulator ~5 us of CPU per ack, as much as writing the batch). It
// takes only the plain form the hub sends (Encode of an AckMsg): exact lower-case keys, each at
// most once, no escapes, integers without sign, fraction or exponent, and it never refuses:
// anything else, valid or not, gets ok false, and the strict decoder decides and words the
// error. What it accepts, that decoder accepts with the same value (FuzzScanAck checks it).
func fastAck(b []byte) (m AckMsg, ok bool) {
	if len(b) > MaxPayloadBytes {
		return AckMsg{}, false
	}
	s := scanner{b: b}
	var seen uint8
	s.ws()
	if !s.take('{') {
		return AckMsg{}, false
	}
	for first := true; ; first = false {
		s.ws()
		if s.take('}') {
			break
		}
		if !first && !(s.take(',') && s.wsThen()) {
			return AckMsg{}, false
		}
		key, ok := s.key()
		if !ok {
			return AckMsg{}, false
		}
		var bit uint8
		switch string(key) {
		case "v":
			bit = 1
			v, ok := s.uint()
			if !ok || v != Version {
				return AckMsg{}, false
			}
			m.V = Version
		case "epoch":
			bit = 2
			e, ok := s.plainString()
			if !ok {
				return AckMsg{}, false
			}
			m.Epoch = string(e)
		case "upTo":
			bit = 4
			if m.UpTo, ok = s.uint(); !ok {
				return AckMsg{}, false
			}
		default:
			return AckMsg{}, false
		}
		if seen&bit != 0 {
			return AckMsg{}, false
		}
		seen |= bit
	}
	s.ws()
	return m, s.i == len(s.b) && seen&1 != 0
}
