package idcard

import "fmt"

// Status is SW3 of a reply (GA 467). Statuses other than success are returned as errors, so
// callers branch with errors.Is(err, idcard.StatusNoCard) or errors.As.
type Status byte

// GA 467 SW3 values.
const (
	StatusOK               Status = 0x90
	StatusCardFound        Status = 0x9F
	StatusChecksum         Status = 0x10 // the reader saw a bad checksum in our frame
	StatusLength           Status = 0x11
	StatusBadCommand       Status = 0x21
	StatusNotPermitted     Status = 0x23
	StatusUnknown          Status = 0x24
	StatusAuth             Status = 0x31 // card authentication by the SAM failed
	StatusSAMAuth          Status = 0x32 // SAM authentication by the card failed
	StatusInfoCheck        Status = 0x33
	StatusCardType         Status = 0x40
	StatusReadFailed       Status = 0x41
	StatusRandom           Status = 0x47
	StatusSAMSelfTest      Status = 0x60
	StatusSAMNotAuthorised Status = 0x66
	StatusNoCard           Status = 0x80 // find card failed
	StatusSelectFailed     Status = 0x81
	StatusNoContent        Status = 0x91
	StatusCommsFailure     Status = 0xFF
)

var statusText = map[Status]string{
	StatusOK: "success", StatusCardFound: "card found", StatusChecksum: "checksum error",
	StatusLength: "length error", StatusBadCommand: "bad command", StatusNotPermitted: "not permitted",
	StatusUnknown: "unknown error", StatusAuth: "card authentication failed",
	StatusSAMAuth: "SAM authentication failed", StatusInfoCheck: "information check failed",
	StatusCardType: "unrecognised card type", StatusReadFailed: "read failed",
	StatusRandom: "random number failure", StatusSAMSelfTest: "SAM self-test failed",
	StatusSAMNotAuthorised: "SAM not authorised", StatusNoCard: "no card",
	StatusSelectFailed: "select card failed", StatusNoContent: "no content",
	StatusCommsFailure: "communication failure",
}

func (s Status) Error() string {
	if t, ok := statusText[s]; ok {
		return fmt.Sprintf("SAM status %02X: %s", byte(s), t)
	}
	return fmt.Sprintf("SAM status %02X: undefined", byte(s))
}

// String is Error.
func (s Status) String() string { return s.Error() }

// Fault reports whether s means the reader or its SAM is broken (as opposed to "no card" or a
// card that could not be read).
func (s Status) Fault() bool {
	switch s {
	case StatusSAMSelfTest, StatusSAMNotAuthorised, StatusCommsFailure, StatusRandom:
		return true
	}
	return false
}
