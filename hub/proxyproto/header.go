// Package proxyproto reads the PROXY protocol version 2 header (HAProxy's doc/proxy-protocol.txt,
// cited below by section) that an L4 load balancer in front of the hub puts at the start of each
// connection it relays (HAProxy's send-proxy-v2), so that the hub sees the client's address, not
// the balancer's: in its per-address limits, its logs and its metrics.
//
// The header is taken only from the balancers the operator names, and their connections must
// carry one: a receiver must not guess whether a header is present (§2), and a header accepted
// from anyone else would let a client claim any address (§5). A connection from anyone else
// that starts with a PROXY header is refused. Version 1 (the text header, §2.1) is refused too,
// with a reason that says to send version 2.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

var (
	// ErrUntrusted is a PROXY header from a peer that is not a configured load balancer.
	ErrUntrusted = errors.New("PROXY protocol header from a peer that is not a trusted load balancer")
	// ErrMissing is a connection from a trusted load balancer that does not start with a
	// version 2 header.
	ErrMissing = errors.New("no PROXY protocol v2 header from a trusted load balancer")
	// ErrMalformed is a version 2 header that breaks the specification.
	ErrMalformed = errors.New("malformed PROXY protocol v2 header")
)

// signature opens every version 2 header (§2.2); v1 opens a version 1 header (§2.1).
var (
	signature = []byte("\r\n\r\n\x00\r\nQUIT\n")
	v1        = []byte("PROXY ")
)

// MaxLength bounds the part of a header after its first 16 bytes: the addresses and the TLVs.
// The specification allows 65,535 bytes; a balancer sends 12 or 36 bytes of addresses and,
// when configured to, a few short TLVs (§2.2.1-2.2.7).
const MaxLength = 1024

// Command is a header's command (§2.2, the 13th byte's low 4 bits).
type Command byte

const (
	// Local: the balancer's own connection (a health check); the addresses are the
	// connection's.
	Local Command = 0x0
	// Proxy: relayed on behalf of a client; the header gives its address.
	Proxy Command = 0x1
)

// Header is what a version 2 header says.
type Header struct {
	Command Command
	// Source and Dest are the client's address and the one it connected to, for PROXY over
	// TCP or UDP on IPv4 or IPv6; invalid otherwise (LOCAL, AF_UNSPEC, AF_UNIX), when the
	// connection's own addresses stand (§2.2).
	Source, Dest netip.AddrPort
}

// Read reads a version 2 header from r, exactly its bytes and no more, so that what follows
// is read from r as it came. An error wraps ErrMissing (r did not start with the signature) or
// ErrMalformed, or is r's.
func Read(r io.Reader) (Header, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return Header{}, fmt.Errorf("%w: the connection ended within its first 16 bytes", ErrMissing)
		}
		return Header{}, err
	}
	if !bytes.Equal(fixed[:12], signature) {
		if bytes.HasPrefix(fixed[:], v1) {
			return Header{}, fmt.Errorf("%w: a version 1 (text) header; only version 2 is accepted (HAProxy: send-proxy-v2)", ErrMissing)
		}
		return Header{}, fmt.Errorf("%w: the first bytes are not its signature (is the balancer's send-proxy-v2 set?)", ErrMissing)
	}
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if n > MaxLength {
		return Header{}, fmt.Errorf("%w: %d bytes of addresses and TLVs, more than %d", ErrMalformed, n, MaxLength)
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// §2.2: the receiver must reject partial headers.
			return Header{}, fmt.Errorf("%w: the connection ended within the header (%d bytes announced)", ErrMalformed, n)
		}
		return Header{}, err
	}
	return parse(fixed[12], fixed[13], rest)
}

// parse reads the version and command byte, the family and protocol byte, and the addresses
// and TLVs that follow (§2.2).
func parse(verCmd, famProto byte, rest []byte) (Header, error) {
	// The version must be 2; other commands than LOCAL and PROXY must be dropped.
	if v := verCmd >> 4; v != 2 {
		return Header{}, fmt.Errorf("%w: version %d, want 2", ErrMalformed, v)
	}
	h := Header{Command: Command(verCmd & 0xf)}
	if h.Command != Local && h.Command != Proxy {
		return Header{}, fmt.Errorf("%w: command %#x, want LOCAL (0) or PROXY (1)", ErrMalformed, byte(h.Command))
	}
	// Families beyond AF_UNIX and protocols beyond DGRAM "must be rejected as invalid".
	fam, proto := famProto>>4, famProto&0xf
	if fam > 3 || proto > 2 {
		return Header{}, fmt.Errorf("%w: family and protocol %#02x", ErrMalformed, famProto)
	}
	// Receivers must use the length to skip the addresses, whatever the command.
	var size int
	switch {
	case proto == 0 || fam == 0: // UNSPEC: no address to read
	case fam == 1:
		size = 2*4 + 2*2
	case fam == 2:
		size = 2*16 + 2*2
	case fam == 3:
		size = 2 * 108
	}
	if len(rest) < size {
		return Header{}, fmt.Errorf("%w: %d bytes for the addresses of family and protocol %#02x, want %d",
			ErrMalformed, len(rest), famProto, size)
	}
	if err := checkTLVs(rest[size:]); err != nil {
		return Header{}, err
	}
	if h.Command == Local || proto == 0 {
		// LOCAL: the addresses are ignored; UNSPEC: the connection's own addresses stand.
		return h, nil
	}
	a := rest[:size]
	switch fam {
	case 1:
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	case 2:
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])).Unmap(), binary.BigEndian.Uint16(a[34:36]))
	}
	// AF_UNIX (3): no IP address; the connection's own addresses stand.
	return h, nil
}

// checkTLVs checks that b is a sequence of whole type-length-value vectors (§2.2): none runs
// past the header. Their values are not used.
func checkTLVs(b []byte) error {
	for len(b) > 0 {
		if len(b) < 3 {
			return fmt.Errorf("%w: %d stray bytes after the last TLV", ErrMalformed, len(b))
		}
		n := int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < 3+n {
			return fmt.Errorf("%w: TLV of type %#02x announces %d bytes, %d left in the header", ErrMalformed, b[0], n, len(b)-3)
		}
		b = b[3+n:]
	}
	return nil
}
