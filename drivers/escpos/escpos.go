// Package escpos drives ESC/POS receipt printers: it builds jobs (GB18030 text for Chinese, QR
// codes with GS ( k, feed, cut), reads real-time status (DLE EOT n) and Automatic Status Back
// messages (GS a n), and refuses a job before sending it when the printer reports paper out,
// cover open or an error. The printer is reached through a Link: a serial port (SerialLink over
// transport.Port) or the USB printer class (drivers/usbprinter).
package escpos

import (
	"errors"
	"fmt"

	"golang.org/x/text/encoding/simplifiedchinese"
)

var (
	// ErrPaperOut: the paper roll is empty (or printing stopped at paper end).
	ErrPaperOut = errors.New("escpos: paper out")
	// ErrCoverOpen: the printer cover is open.
	ErrCoverOpen = errors.New("escpos: cover open")
	// ErrCutter: the autocutter reported an error.
	ErrCutter = errors.New("escpos: autocutter error")
	// ErrUnrecoverable: the printer reported an unrecoverable error.
	ErrUnrecoverable = errors.New("escpos: unrecoverable error")
	// ErrOffline: the printer is offline for another reason.
	ErrOffline = errors.New("escpos: printer offline")
	// ErrBadFrame: bytes from the printer do not form a valid status reply.
	ErrBadFrame = errors.New("escpos: malformed status")
	// ErrBadCommand: a job or command argument is invalid (nothing is sent).
	ErrBadCommand = errors.New("escpos: invalid command")
	// ErrNoStatus: the printer's profile says it ignores DLE EOT.
	ErrNoStatus = errors.New("escpos: printer has no real-time status")
)

// FrameError describes malformed bytes received from a printer. It wraps ErrBadFrame.
type FrameError struct {
	What  string
	Bytes []byte
}

func (e *FrameError) Error() string { return fmt.Sprintf("escpos: malformed %s: % x", e.What, e.Bytes) }

func (e *FrameError) Unwrap() error { return ErrBadFrame }

// Control bytes.
const (
	ESC = 0x1B
	GS  = 0x1D
	FS  = 0x1C
	DLE = 0x10
	EOT = 0x04
	LF  = 0x0A
)

// QR error correction levels (GS ( k function 169).
type QRLevel byte

// QR error correction levels.
const (
	QRLevelL QRLevel = 48
	QRLevelM QRLevel = 49
	QRLevelQ QRLevel = 50
	QRLevelH QRLevel = 51
)

// MaxQRData is the largest payload GS ( k function 180 accepts (QR model 2, version 40, level L).
const MaxQRData = 7089

// Job accumulates the bytes of one print job. Build it with the methods, then Print it. The
// first error sticks and is returned by Bytes; nothing of a failed job is ever sent.
type Job struct {
	b   []byte
	err error
}

// NewJob starts a job: ESC @ (initialise) then FS & (Chinese character mode, so GB18030 text
// prints as hanzi).
func NewJob() *Job { return &Job{b: []byte{ESC, '@', FS, '&'}} }

// Text appends s encoded in GB18030. Control characters other than LF and TAB are refused: they
// would be read as commands.
func (j *Job) Text(s string) *Job {
	if j.err != nil {
		return j
	}
	for i, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7F {
			j.err = fmt.Errorf("%w: control character %U at byte %d of text", ErrBadCommand, r, i)
			return j
		}
	}
	enc, err := simplifiedchinese.GB18030.NewEncoder().String(s)
	if err != nil {
		j.err = fmt.Errorf("%w: text not encodable in GB18030: %w", ErrBadCommand, err)
		return j
	}
	j.b = append(j.b, enc...)
	return j
}

// Line appends s and a line feed.
func (j *Job) Line(s string) *Job { return j.Text(s).raw(LF) }

// Feed prints the buffer and feeds n lines (ESC d n).
func (j *Job) Feed(n uint8) *Job { return j.raw(ESC, 'd', n) }

// Cut feeds to the cutter and cuts (GS V 65/66 0): partial leaves a hinge.
func (j *Job) Cut(partial bool) *Job {
	m := byte(65)
	if partial {
		m = 66
	}
	return j.raw(GS, 'V', m, 0)
}

// QR appends a QR code (model 2) of data with module size 1..16 dots and the given level, using
// GS ( k functions 165, 167, 169, 180 and 181.
func (j *Job) QR(data []byte, module uint8, level QRLevel) *Job {
	if j.err != nil {
		return j
	}
	switch {
	case len(data) == 0 || len(data) > MaxQRData:
		j.err = fmt.Errorf("%w: QR data of %d bytes (1..%d)", ErrBadCommand, len(data), MaxQRData)
	case module < 1 || module > 16:
		j.err = fmt.Errorf("%w: QR module size %d (1..16)", ErrBadCommand, module)
	case level < QRLevelL || level > QRLevelH:
		j.err = fmt.Errorf("%w: QR level %d (48..51)", ErrBadCommand, level)
	}
	if j.err != nil {
		return j
	}
	n := len(data) + 3
	j.raw(GS, '(', 'k', 4, 0, 49, 65, 50, 0)             // fn 165: model 2
	j.raw(GS, '(', 'k', 3, 0, 49, 67, module)            // fn 167: module size
	j.raw(GS, '(', 'k', 3, 0, 49, 69, byte(level))       // fn 169: error correction
	j.raw(GS, '(', 'k', byte(n), byte(n>>8), 49, 80, 48) // fn 180: store data
	j.b = append(j.b, data...)
	return j.raw(GS, '(', 'k', 3, 0, 49, 81, 48) // fn 181: print symbol
}

func (j *Job) raw(b ...byte) *Job {
	if j.err == nil {
		j.b = append(j.b, b...)
	}
	return j
}

// Bytes returns the encoded job, or the first error met while building it.
func (j *Job) Bytes() ([]byte, error) { return j.b, j.err }
