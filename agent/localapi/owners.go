package localapi

import (
	"strconv"
	"sync"
)

// owners says which session owns which device: one at a time. A session owns a device while a
// command of it uses the device, and from Common.Acquire until Common.Release or until it
// disconnects.
type owners struct {
	mu   sync.Mutex
	held map[string]*hold
}

type hold struct {
	s        *session
	acquired bool  // by Common.Acquire
	busy     int64 // requestId of the command using it, 0 when none
}

// inUse is the refusal for a device another app owns.
func inUse(device string, h *hold) *Error {
	return &Error{Code: CodeSequenceError, ErrorCode: "deviceInUse", Detail: map[string]any{"device": device},
		Description: "device " + device + " is in use by another kiosk app (" + h.s.app.App + "); try again when it has released it"}
}

// claim makes s the owner of device for command id; release ends that.
func (o *owners) claim(device string, s *session, id int64) (release func(), err *Error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.held[device]
	switch {
	case h != nil && h.s != s:
		return nil, inUse(device, h)
	case h != nil && h.busy != 0:
		return nil, &Error{Code: CodeSequenceError, ErrorCode: "deviceBusy", Detail: map[string]any{"device": device},
			Description: "device " + device + " is busy with request " + strconv.FormatInt(h.busy, 10) + " of this connection"}
	case h == nil:
		h = &hold{s: s}
		o.held[device] = h
	}
	h.busy = id
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		h.busy = 0
		if !h.acquired && o.held[device] == h {
			delete(o.held, device)
		}
	}, nil
}

// acquire makes s the owner of device until release or disconnect.
func (o *owners) acquire(device string, s *session) *Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.held[device]
	if h != nil && h.s != s {
		return inUse(device, h)
	}
	if h == nil {
		h = &hold{s: s}
		o.held[device] = h
	}
	h.acquired = true
	return nil
}

// release ends s's Common.Acquire of device; a command of s that uses it keeps it until it ends.
func (o *owners) release(device string, s *session) *Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.held[device]
	if h == nil || h.s != s || !h.acquired {
		return &Error{Code: CodeSequenceError, ErrorCode: "notAcquired", Detail: map[string]any{"device": device},
			Description: "device " + device + " is not acquired by this connection"}
	}
	h.acquired = false
	if h.busy == 0 {
		delete(o.held, device)
	}
	return nil
}

// releaseAll drops everything s owns (it disconnected).
func (o *owners) releaseAll(s *session) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for d, h := range o.held {
		if h.s == s {
			delete(o.held, d)
		}
	}
}

// owner returns who owns device, as s sees it: "you", "another app" or "".
func (o *owners) owner(device string, s *session) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch h := o.held[device]; {
	case h == nil:
		return ""
	case h.s == s:
		return "you"
	}
	return "another app"
}
