package proxyproto_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/proxyproto"
)

var sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// header builds a version 2 header as a balancer sends it: signature, version and command,
// family and protocol, length, then body (addresses and TLVs).
func header(verCmd, famProto byte, body []byte) []byte {
	b := append(append([]byte{}, sig...), verCmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// tcp4 is the address block of TCP over IPv4 (§2.2): source, destination, their ports.
func tcp4(src, dst netip.AddrPort) []byte {
	b := append(src.Addr().AsSlice(), dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

func tcp6(src, dst netip.AddrPort) []byte {
	s, d := src.Addr().As16(), dst.Addr().As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

var (
	client4 = netip.MustParseAddrPort("203.0.113.7:51234")
	hub4    = netip.MustParseAddrPort("10.0.0.5:8883")
	client6 = netip.MustParseAddrPort("[2001:db8::7]:51234")
	hub6    = netip.MustParseAddrPort("[2001:db8::1]:8883")
)

func TestRead(t *testing.T) {
	tlv := []byte{0x04, 0, 2, 0, 0} // PP2_TYPE_NOOP, 2 bytes (§2.2.4)
	for _, c := range []struct {
		name string
		in   []byte
		want proxyproto.Header
		err  error
	}{
		{"PROXY TCP over IPv4", header(0x21, 0x11, tcp4(client4, hub4)), proxyproto.Header{Command: proxyproto.Proxy, Source: client4, Dest: hub4}, nil},
		{"PROXY TCP over IPv6", header(0x21, 0x21, tcp6(client6, hub6)), proxyproto.Header{Command: proxyproto.Proxy, Source: client6, Dest: hub6}, nil},
		{"with TLVs after the addresses", header(0x21, 0x11, append(tcp4(client4, hub4), tlv...)), proxyproto.Header{Command: proxyproto.Proxy, Source: client4, Dest: hub4}, nil},
		{"LOCAL (a health check): addresses ignored", header(0x20, 0x11, tcp4(client4, hub4)), proxyproto.Header{Command: proxyproto.Local}, nil},
		{"LOCAL without addresses", header(0x20, 0x00, nil), proxyproto.Header{Command: proxyproto.Local}, nil},
		{"PROXY UNSPEC: the connection's addresses stand", header(0x21, 0x00, nil), proxyproto.Header{Command: proxyproto.Proxy}, nil},
		{"PROXY over AF_UNIX: no IP address", header(0x21, 0x31, make([]byte, 216)), proxyproto.Header{Command: proxyproto.Proxy}, nil},
		{"no signature: TLS", append([]byte{0x16, 0x03, 0x01, 0x02, 0x00}, make([]byte, 20)...), proxyproto.Header{}, proxyproto.ErrMissing},
		{"version 1", []byte("PROXY TCP4 203.0.113.7 10.0.0.5 51234 8883\r\n"), proxyproto.Header{}, proxyproto.ErrMissing},
		{"ends within 16 bytes", sig[:10], proxyproto.Header{}, proxyproto.ErrMissing},
		{"version 1 in the version nibble", header(0x11, 0x11, tcp4(client4, hub4)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"command 2", header(0x22, 0x11, tcp4(client4, hub4)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"family 4", header(0x21, 0x41, tcp4(client4, hub4)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"protocol 3", header(0x21, 0x13, tcp4(client4, hub4)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"IPv4 addresses cut short", header(0x21, 0x11, tcp4(client4, hub4)[:10]), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"IPv6 length with IPv4 addresses", header(0x21, 0x21, tcp4(client4, hub4)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"a TLV past the end", header(0x21, 0x11, append(tcp4(client4, hub4), 0x04, 0, 9, 0)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"stray bytes after the TLVs", header(0x21, 0x11, append(tcp4(client4, hub4), 0x04, 0)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"longer than MaxLength", header(0x21, 0x11, make([]byte, proxyproto.MaxLength+1)), proxyproto.Header{}, proxyproto.ErrMalformed},
		{"announced length not sent", header(0x21, 0x11, tcp4(client4, hub4))[:20], proxyproto.Header{}, proxyproto.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := bytes.NewReader(append(c.in, "after"...))
			got, err := proxyproto.Read(r)
			if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if err == nil {
				// Exactly the header was read: what follows is the client's.
				if rest, _ := io.ReadAll(r); string(rest) != "after" {
					t.Fatalf("left %q after the header, want %q", rest, "after")
				}
			}
		})
	}
}

// The parser of bytes a balancer (or anyone on the network, if misconfigured) sends: never
// panics, reads no more than the header, and a header it accepts has addresses only for PROXY.
func FuzzRead(f *testing.F) {
	f.Add(header(0x21, 0x11, tcp4(client4, hub4)))
	f.Add(header(0x21, 0x21, tcp6(client6, hub6)))
	f.Add(header(0x20, 0x00, nil))
	f.Add(header(0x21, 0x11, append(tcp4(client4, hub4), 0x04, 0, 1, 0)))
	f.Add(header(0x21, 0x31, make([]byte, 216)))
	f.Add([]byte("PROXY TCP4 203.0.113.7 10.0.0.5 51234 8883\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := proxyproto.Read(r)
		if err != nil {
			if !errors.Is(err, proxyproto.ErrMissing) && !errors.Is(err, proxyproto.ErrMalformed) {
				t.Fatalf("error %v is neither ErrMissing nor ErrMalformed", err)
			}
			return
		}
		read := len(in) - r.Len()
		if want := 16 + int(binary.BigEndian.Uint16(in[14:16])); read != want {
			t.Fatalf("read %d bytes, the header has %d", read, want)
		}
		if h.Command == proxyproto.Local && (h.Source.IsValid() || h.Dest.IsValid()) {
			t.Fatalf("LOCAL with addresses: %+v", h)
		}
		if h.Source.IsValid() != h.Dest.IsValid() {
			t.Fatalf("one address without the other: %+v", h)
		}
	})
}
