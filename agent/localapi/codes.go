package localapi

import (
	"context"
	"errors"
	"fmt"
)

// CompletionCode is the outcome of a command, in its completion's header (XFS4IoT API,
// Completion Messages; the values are XFS4IoT's). It implements error, so that a handler can
// return one; *Error adds a description and a command-specific error code.
type CompletionCode string

// Completion codes.
const (
	CodeSuccess              CompletionCode = "success"
	CodeCommandErrorCode     CompletionCode = "commandErrorCode"    // see the payload's errorCode (paperOut, ...)
	CodeCanceled             CompletionCode = "canceled"            // by Common.Cancel (or the connection closed)
	CodeTimeOut              CompletionCode = "timeOut"             // the header's timeout passed
	CodeDeviceNotReady       CompletionCode = "deviceNotReady"      // not connected, or not in a state to work
	CodeHardwareError        CompletionCode = "hardwareError"       // the device failed
	CodeInternalError        CompletionCode = "internalError"       // the agent failed
	CodeInvalidCommand       CompletionCode = "invalidCommand"      // no such command
	CodeInvalidRequestID     CompletionCode = "invalidRequestID"    // Common.Cancel of a request that is not running
	CodeTimeoutNotSupported  CompletionCode = "timeoutNotSupported" // a timeout beyond what the agent allows
	CodeUnsupportedCommand   CompletionCode = "unsupportedCommand"  // the app's manifest does not ask for the service, or no device can
	CodeInvalidData          CompletionCode = "invalidData"         // the message or its payload is malformed
	CodeUserError            CompletionCode = "userError"           // the citizen's doing: a card moved away mid-read
	CodeUnsupportedData      CompletionCode = "unsupportedData"     // well formed, but not something this device does
	CodeFraudAttempt         CompletionCode = "fraudAttempt"
	CodeSequenceError        CompletionCode = "sequenceError" // not now: the device is held by another app, or busy
	CodeAuxiliaryDeviceError CompletionCode = "auxiliaryDeviceError"
)

func (c CompletionCode) Error() string { return "localapi: completion " + string(c) }

// Error is a command that did not succeed: Code goes into the completion's header, Description
// into its errorDescription and, with commandErrorCode, ErrorCode and Detail into its payload.
// A Description never holds personal data.
type Error struct {
	Code        CompletionCode
	ErrorCode   string // command-specific, with CodeCommandErrorCode: paperOut, deviceInUse, ...
	Description string
	Detail      map[string]any // further payload fields (device, reasons)
}

func (e *Error) Error() string {
	if e.ErrorCode != "" {
		return fmt.Sprintf("localapi: %s (%s): %s", e.Code, e.ErrorCode, e.Description)
	}
	return fmt.Sprintf("localapi: %s: %s", e.Code, e.Description)
}

func (e *Error) Unwrap() error { return e.Code }

// fail returns an *Error with a formatted description.
func fail(code CompletionCode, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// errCanceled and errTimeOut are the causes a command's context is ended with.
var (
	errCanceled   = fmt.Errorf("%w by Common.Cancel", CodeCanceled)
	errTimeOut    = fmt.Errorf("%w: the command's timeout passed", CodeTimeOut)
	errClosed     = fmt.Errorf("%w: the connection closed", CodeCanceled)
	errShutdown   = fmt.Errorf("%w: the agent is stopping", CodeCanceled)
	errSessionEnd = fmt.Errorf("%w: the citizen's session ended", CodeCanceled)
)

// outcome maps what a handler returned, in the light of its context, to a completion: an
// *Error as it is; a CompletionCode; a context that ended (timeout, cancel, disconnect) as what
// ended it; anything else as internalError.
func outcome(ctx context.Context, err error) *Error {
	var e *Error
	var code CompletionCode
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		cause := context.Cause(ctx)
		if !errors.As(cause, &code) {
			code = CodeCanceled
		}
		return &Error{Code: code, Description: cause.Error()}
	case errors.As(err, &e):
		return e
	case errors.As(err, &code):
		return &Error{Code: code, Description: err.Error()}
	}
	return &Error{Code: CodeInternalError, Description: err.Error()}
}
