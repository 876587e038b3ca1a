package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// MQTT 3.1.1 control packet types (§2.2.1).
const (
	pktConnect     = 1
	pktPublish     = 3
	pktPuback      = 4
	pktPubrec      = 5
	pktPubrel      = 6
	pktPubcomp     = 7
	pktSubscribe   = 8
	pktUnsubscribe = 10
	pktPingreq     = 12
	pktDisconnect  = 14
)

// protocolLevel is the only CONNECT protocol level served: MQTT 3.1.1 (§3.1.2.2).
const protocolLevel = 4

// connackBadVersion is the CONNACK a client announcing another protocol level gets before the
// connection is closed [MQTT-3.1.2-2]: return code 0x01, unacceptable protocol version.
var connackBadVersion = []byte{0x20, 0x02, 0x00, 0x01}

// connackUnavailable refuses a CONNECT with return code 0x03, server unavailable: the device may
// retry soon (§3.2.2.3).
var connackUnavailable = []byte{0x20, 0x02, 0x00, 0x03}

// guard reads MQTT 3.1.1 packets from a client stream one at a time, checks each completely
// against the specification and the broker's limits, and only then hands its bytes on. mochi reads
// through it, so mochi never sees an oversize, malformed, MQTT 5 or otherwise unexpected packet
// (the MQTT 5 SUBSCRIBE of upstream issue 501 panics mochi v2.7.9; an announced 200 MB packet
// makes it allocate 200 MB, issue 502).
type guard struct {
	r          io.Reader
	max        int // largest packet, fixed header included
	maxConnect int // largest CONNECT packet, likewise; 0: max
	connected  bool
	clientID   string
	buf        *[]byte // the packet being read, from packetBufs; nil between packets
	pending    []byte  // validated bytes of buf not yet read
}

// packetBufs hold the guard's packet buffers between packets, by size class: an idle connection
// keeps none. A packet's buffer grows with the bytes received, to at most four times as many (or
// the smallest class), never to what a packet only announces; one larger than the largest class
// is not pooled.
var (
	bufClasses = [...]int{2 << 10, 8 << 10, 32 << 10, 128 << 10}
	packetBufs [len(bufClasses)]sync.Pool
)

// takeBuf returns a buffer from the smallest class that holds n bytes (of n bytes exactly when
// none does) with the first have bytes of old, whose buffer goes back to its pool.
func takeBuf(old *[]byte, have, n int) *[]byte {
	var b *[]byte
	for i, c := range bufClasses {
		if c >= n {
			if p, _ := packetBufs[i].Get().(*[]byte); p != nil {
				b = p
			} else {
				s := make([]byte, c)
				b = &s
			}
			break
		}
	}
	if b == nil {
		s := make([]byte, n)
		b = &s
	}
	if old != nil {
		copy(*b, (*old)[:have])
		putBuf(old)
	}
	return b
}

func putBuf(b *[]byte) {
	for i, c := range bufClasses {
		if cap(*b) == c {
			packetBufs[i].Put(b)
			return
		}
	}
}

// Read hands out validated bytes, reading and checking the next packet when none are pending.
// A violation is returned as a *Violation.
func (g *guard) Read(p []byte) (int, error) {
	for len(g.pending) == 0 {
		if err := g.next(); err != nil {
			g.release()
			return 0, err
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	if len(g.pending) == 0 {
		g.release()
	}
	return n, nil
}

func (g *guard) release() {
	if g.buf == nil {
		return
	}
	putBuf(g.buf)
	g.buf, g.pending = nil, nil
}

func (g *guard) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(g.r, hdr[:1]); err != nil {
		return err
	}
	if v := g.checkHeader(hdr[0]); v != nil {
		return v
	}
	// §2.2.3: the remaining length takes at most four bytes, 7 bits each.
	n, rem := 1, 0
	for {
		if n == len(hdr) {
			return violation(ReasonMalformed, "remaining length longer than 4 bytes [MQTT-2.2.3]")
		}
		if _, err := io.ReadFull(g.r, hdr[n:n+1]); err != nil {
			return unexpectedEOF(err)
		}
		rem |= int(hdr[n]&0x7f) << (7 * (n - 1))
		n++
		if hdr[n-1]&0x80 == 0 {
			break
		}
	}
	limit := g.max
	if !g.connected && g.maxConnect > 0 {
		limit = g.maxConnect // checkHeader let only a CONNECT through
	}
	if n+rem > limit {
		return violation(ReasonOversize, "%s packet of %d bytes announced, limit %d", typeName(hdr[0]>>4), n+rem, limit)
	}
	// Only now take a buffer: an idle connection waits for its next packet holding none. It
	// grows a class at a time as the packet's bytes arrive.
	total := n + rem
	g.release()
	g.buf = takeBuf(nil, 0, min(total, bufClasses[0]))
	have := copy(*g.buf, hdr[:n])
	for have < total {
		if have == len(*g.buf) {
			g.buf = takeBuf(g.buf, have, min(total, 4*have))
		}
		k, err := g.r.Read((*g.buf)[have:min(len(*g.buf), total)])
		have += k
		if err != nil && have < total {
			return unexpectedEOF(err)
		}
	}
	pk := (*g.buf)[:total]
	if v := g.checkBody(hdr[0], pk[n:]); v != nil {
		return v
	}
	g.pending = pk
	return nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkHeader checks the first byte of a packet: its type and flags, and the CONNECT order.
func (g *guard) checkHeader(b byte) *Violation {
	typ, flags := b>>4, b&0x0f
	switch {
	case !g.connected && typ != pktConnect:
		return violation(ReasonMalformed, "first packet is %s, want CONNECT [MQTT-3.1.0-1]", typeName(typ))
	case g.connected && typ == pktConnect:
		return violation(ReasonMalformed, "second CONNECT [MQTT-3.1.0-2]")
	}
	switch typ {
	case pktPublish:
		switch flags >> 1 & 3 {
		case 3:
			return violation(ReasonMalformed, "PUBLISH with QoS 3 [MQTT-3.3.1-4]")
		case 2:
			return violation(ReasonMalformed, "PUBLISH with QoS 2: only QoS 0 and 1 are served")
		case 0:
			if flags&0x08 != 0 {
				return violation(ReasonMalformed, "PUBLISH with QoS 0 and DUP set [MQTT-3.3.1-2]")
			}
		}
		return nil
	case pktSubscribe, pktUnsubscribe:
		if flags != 2 {
			return violation(ReasonMalformed, "%s flags %#x, want 0x2 [MQTT-3.8.1-1] [MQTT-3.10.1-1]", typeName(typ), flags)
		}
		return nil
	case pktConnect, pktPuback, pktPingreq, pktDisconnect:
		if flags != 0 {
			return violation(ReasonMalformed, "%s flags %#x, want 0 [MQTT-2.2.2-2]", typeName(typ), flags)
		}
		return nil
	case pktPubrec, pktPubrel, pktPubcomp:
		return violation(ReasonMalformed, "%s belongs to QoS 2, which is not served", typeName(typ))
	}
	return violation(ReasonMalformed, "packet type %s is never sent by a client", typeName(typ))
}

// checkBody checks a packet's variable header and payload.
func (g *guard) checkBody(b byte, body []byte) *Violation {
	typ := b >> 4
	r := &reader{b: body}
	switch typ {
	case pktConnect:
		return g.checkConnect(r)
	case pktPublish:
		topic := r.str("topic name")
		if r.err == nil {
			if v := checkTopicName(topic); v != nil {
				return v
			}
		}
		if b>>1&3 > 0 {
			r.packetID()
		}
		r.b = nil // the rest is the application message
	case pktPuback:
		r.packetID()
	case pktSubscribe, pktUnsubscribe:
		r.packetID()
		for i := 0; r.err == nil && (i == 0 || len(r.b) > 0); i++ {
			if f := r.str("topic filter"); r.err == nil && len(f) == 0 {
				return violation(ReasonMalformed, "%s with an empty topic filter [MQTT-4.7.3-1]", typeName(typ))
			}
			if typ == pktSubscribe {
				// [MQTT-3-8.3-4]: reserved bits zero, requested QoS 0..2.
				if o := r.byte("requested QoS"); r.err == nil && o > 2 {
					return violation(ReasonMalformed, "SUBSCRIBE requested QoS byte %#x [MQTT-3-8.3-4]", o)
				}
			}
		}
	case pktPingreq, pktDisconnect:
	}
	if r.err != nil {
		return violation(ReasonMalformed, "%s: %v", typeName(typ), r.err)
	}
	if len(r.b) > 0 {
		return violation(ReasonMalformed, "%s: %d bytes after the last field", typeName(typ), len(r.b))
	}
	return nil
}

// checkConnect checks a CONNECT packet (§3.1).
func (g *guard) checkConnect(r *reader) *Violation {
	name := r.str("protocol name")
	level := r.byte("protocol level")
	if r.err != nil {
		return violation(ReasonMalformed, "CONNECT: %v", r.err)
	}
	switch {
	case string(name) == "MQIsdp":
		return violation(ReasonProtocolVersion, "MQTT 3.1 (MQIsdp level %d): only MQTT 3.1.1 (level 4) is served", level)
	case string(name) != "MQTT":
		return violation(ReasonMalformed, "CONNECT protocol name %q, want MQTT [MQTT-3.1.2-1]", name)
	case level != protocolLevel:
		return violation(ReasonProtocolVersion, "CONNECT protocol level %d: only MQTT 3.1.1 (level 4) is served [MQTT-3.1.2-2]", level)
	}
	flags := r.byte("connect flags")
	keepalive := r.uint16("keep alive")
	if r.err != nil {
		return violation(ReasonMalformed, "CONNECT: %v", r.err)
	}
	will, willQoS, willRetain := flags&0x04 != 0, flags>>3&3, flags&0x20 != 0
	user, pass := flags&0x80 != 0, flags&0x40 != 0
	switch {
	case flags&1 != 0:
		return violation(ReasonMalformed, "CONNECT reserved flag set [MQTT-3.1.2-3]")
	case !will && (willQoS != 0 || willRetain):
		return violation(ReasonMalformed, "CONNECT will QoS or retain without a will [MQTT-3.1.2-11] [MQTT-3.1.2-15]")
	case willQoS == 3:
		return violation(ReasonMalformed, "CONNECT will QoS 3 [MQTT-3.1.2-14]")
	case willQoS == 2:
		return violation(ReasonMalformed, "CONNECT will QoS 2: only QoS 0 and 1 are served")
	case pass && !user:
		return violation(ReasonMalformed, "CONNECT password without user name [MQTT-3.1.2-22]")
	case keepalive == 0:
		// With keep alive 0 mochi sets no read deadline, and a half-open connection lives forever.
		return violation(ReasonConnectRefused, "CONNECT keep alive 0: a keep alive is required")
	}
	id := r.str("client identifier")
	if will {
		topic := r.str("will topic")
		if r.err == nil {
			if v := checkTopicName(topic); v != nil {
				return v
			}
		}
		r.bytes("will message")
	}
	if user {
		r.str("user name")
	}
	if pass {
		r.bytes("password")
	}
	if r.err != nil {
		return violation(ReasonMalformed, "CONNECT: %v", r.err)
	}
	if len(r.b) > 0 {
		return violation(ReasonMalformed, "CONNECT: %d bytes after the last field", len(r.b))
	}
	g.connected, g.clientID = true, string(id)
	return nil
}

// checkTopicName checks a topic name a client publishes to (§4.7).
func checkTopicName(t []byte) *Violation {
	if len(t) == 0 {
		return violation(ReasonMalformed, "empty topic name [MQTT-4.7.3-1]")
	}
	if bytes.ContainsAny(t, "+#") {
		return violation(ReasonMalformed, "wildcard in topic name %q [MQTT-3.3.2-2]", t)
	}
	return nil
}

// reader decodes MQTT fields; the first failure sticks in err.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("%s missing", what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint16(what string) uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail("%s missing", what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) packetID() {
	if id := r.uint16("packet identifier"); r.err == nil && id == 0 {
		r.fail("packet identifier 0 [MQTT-2.3.1-1]")
	}
}

// bytes reads binary data with a two-byte length prefix (§1.5.3).
func (r *reader) bytes(what string) []byte {
	if r.err != nil || len(r.b) < 2 {
		r.fail("%s length missing", what)
		return nil
	}
	n := int(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	if len(r.b) < n {
		r.fail("%s of %d bytes runs past the packet end", what, n)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// str reads a UTF-8 encoded string: well-formed, without U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2].
// It shares the packet's memory.
func (r *reader) str(what string) []byte {
	v := r.bytes(what)
	if r.err != nil {
		return nil
	}
	if !utf8.Valid(v) || bytes.IndexByte(v, 0) >= 0 {
		r.fail("%s is not well-formed UTF-8 without U+0000 [MQTT-1.5.3-1]", what)
		return nil
	}
	return v
}

var typeNames = [16]string{"reserved(0)", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved(15)"}

func typeName(t byte) string { return typeNames[t&0x0f] }
