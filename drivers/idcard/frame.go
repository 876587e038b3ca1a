// Package idcard drives second-generation resident ID card readers through their security module
// (SAM) as specified by GA 467: framing, status codes, the commands a kiosk needs, decoding of the
// 256-byte text block for the four card types, and a Reader over a serial port or a USB vendor
// bulk interface with deadlines on every exchange.
//
// ID-card data is personal data: an Identity never prints the name or number in clear (String,
// fmt verbs, JSON and slog all mask them) and Wipe zeroes it. Errors never carry card contents.
package idcard

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var (
	// ErrChecksum: the frame's CHK is not the XOR of its bytes.
	ErrChecksum = errors.New("idcard: frame checksum mismatch")
	// ErrLength: the LEN field is outside what any GA 467 frame uses.
	ErrLength = errors.New("idcard: frame length out of range")
	// ErrTruncated: the frame ends before LEN says it does, or a reply is shorter than its fields.
	ErrTruncated = errors.New("idcard: frame truncated")
	// ErrPreamble: the bytes do not start with AA AA AA 96 69.
	ErrPreamble = errors.New("idcard: missing preamble AA AA AA 96 69")
	// ErrTrailing: bytes follow the frame.
	ErrTrailing = errors.New("idcard: trailing bytes after frame")
)

// Preamble starts every frame in both directions (GA 467).
var Preamble = [5]byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}

const (
	// HeaderLen is the preamble plus the two-byte LEN.
	HeaderLen = 7
	// MaxLen bounds LEN. The longest reply (text, photo and a 1024-byte fingerprint) has
	// LEN 2314; anything far above it is a false preamble or line noise.
	MaxLen = 4096
	// minLen is CMD PARA CHK, the shortest frame body.
	minLen = 3
)

// AppendFrame appends a frame carrying body (CMD PARA DATA from the host, SW1 SW2 SW3 DATA from
// the reader) to dst.
func AppendFrame(dst []byte, body ...[]byte) []byte {
	n := 1 // CHK
	for _, b := range body {
		n += len(b)
	}
	dst = append(dst, Preamble[:]...)
	start := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n)) // GA 467: LEN counts everything after it, CHK included
	for _, b := range body {
		dst = append(dst, b...)
	}
	return append(dst, xor(dst[start:]))
}

// AppendCommand appends the host frame CMD PARA DATA to dst.
func AppendCommand(dst []byte, c Command, data []byte) []byte {
	return AppendFrame(dst, []byte{c.Code, c.Para}, data)
}

// xor is CHK: the XOR of every byte after the preamble, LEN included (GA 467).
func xor(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// Split finds the first frame in b. It returns the frame's bounds b[start:end]; bytes before start
// are garbage the caller drops (resynchronisation). end == 0 with a nil error means more bytes are
// needed (b[:start] may still be dropped). On ErrLength or ErrChecksum the caller drops b[:end]
// and reports the error: end is past the false preamble or the corrupt frame.
func Split(b []byte) (start, end int, err error) {
	start = indexPreamble(b)
	if len(b)-start < HeaderLen {
		return start, 0, nil
	}
	n := int(binary.BigEndian.Uint16(b[start+5:]))
	if n < minLen || n > MaxLen {
		return start, start + 1, fmt.Errorf("%w: LEN %d, want %d..%d", ErrLength, n, minLen, MaxLen)
	}
	end = start + HeaderLen + n
	if len(b) < end {
		return start, 0, nil
	}
	if got, want := b[end-1], xor(b[start+5:end-1]); got != want {
		return start, end, fmt.Errorf("%w: CHK %02X, computed %02X", ErrChecksum, got, want)
	}
	return start, end, nil
}

// indexPreamble returns the index of the first preamble in b or, if there is none, the index of
// the longest suffix of b that could begin one.
func indexPreamble(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != Preamble[0] {
			continue
		}
		k := 1
		for k < len(Preamble) && i+k < len(b) && b[i+k] == Preamble[k] {
			k++
		}
		if k == len(Preamble) || i+k == len(b) {
			return i
		}
	}
	return len(b)
}

// DecodeFrame checks that b is exactly one well-formed frame and returns its body (without
// preamble, LEN and CHK).
func DecodeFrame(b []byte) ([]byte, error) {
	start, end, err := Split(b)
	switch {
	case start != 0:
		return nil, fmt.Errorf("%w (%d bytes before it)", ErrPreamble, start)
	case err != nil:
		return nil, err
	case end == 0 && len(b) < HeaderLen:
		return nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderLen)
	case end == 0:
		return nil, fmt.Errorf("%w: %d bytes, LEN says %d", ErrTruncated, len(b), HeaderLen+int(binary.BigEndian.Uint16(b[5:])))
	case end != len(b):
		return nil, fmt.Errorf("%w: %d after a %d-byte frame", ErrTrailing, len(b)-end, end)
	}
	return b[HeaderLen : end-1], nil
}

// Reply is a decoded reader-to-host frame body: SW1 SW2 SW3 DATA.
type Reply struct {
	SW1, SW2 byte
	Status   Status // SW3
	Data     []byte // aliases the frame
}

// ParseReply splits a reply body.
func ParseReply(body []byte) (Reply, error) {
	if len(body) < 3 {
		return Reply{}, fmt.Errorf("%w: reply body of %d bytes has no SW1 SW2 SW3", ErrTruncated, len(body))
	}
	return Reply{SW1: body[0], SW2: body[1], Status: Status(body[2]), Data: body[3:]}, nil
}

// Command is a GA 467 command: CMD and PARA.
type Command struct{ Code, Para byte }

// The commands of GA 467 that the driver uses.
var (
	CmdResetSAM        = Command{0x10, 0xFF}
	CmdSAMStatus       = Command{0x11, 0xFF}
	CmdSAMID           = Command{0x12, 0xFF}
	CmdFindCard        = Command{0x20, 0x01}
	CmdSelectCard      = Command{0x20, 0x02}
	CmdReadText        = Command{0x30, 0x01} // text + photo
	CmdReadFingerprint = Command{0x30, 0x10} // text + photo + fingerprint
	CmdReadNewAddress  = Command{0x30, 0x03} // appended (new) address
)

var commandNames = map[Command]string{
	CmdResetSAM: "reset SAM", CmdSAMStatus: "SAM status", CmdSAMID: "read SAM ID",
	CmdFindCard: "find card", CmdSelectCard: "select card", CmdReadText: "read text+photo",
	CmdReadFingerprint: "read text+photo+fingerprint", CmdReadNewAddress: "read appended address",
}

func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("command %02X %02X", c.Code, c.Para)
}

// success is the SW3 that a command returns when it worked: 9F for find card, 90 otherwise.
func (c Command) success() Status {
	if c == CmdFindCard {
		return StatusCardFound
	}
	return StatusOK
}
