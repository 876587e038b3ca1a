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
	s.ws()
	seen, ok := s.object(func(key []byte) (bit uint8, ok bool) {
		switch string(key) {
		case "v":
			v, ok := s.uint()
			m.V = Version
			return 1, ok && v == Version
		case "epoch":
			e, ok := s.plainString()
			m.Epoch = string(e)
			return 2, ok
		case "upTo":
			m.UpTo, ok = s.uint()
			return 4, ok
		}
		return 0, false
	})
	s.ws()
	if !ok || s.i != len(s.b) || seen&1 == 0 {
		return AckMsg{}, false
	}
	return m, true
}
