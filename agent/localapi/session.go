package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
)

// session is one WebSocket connection of one app.
type session struct {
	srv  *Server
	conn *websocket.Conn
	app  Manifest
	log  *slog.Logger

	ctx    context.Context // ends every command of the session
	cancel context.CancelCauseFunc

	outMu     sync.Mutex
	out       chan []byte // to the writer; closed at the end
	outClosed bool
	closeOnce sync.Once

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc // by requestId
	wg      sync.WaitGroup                    // commands and the status watcher
}

func newSession(srv *Server, conn *websocket.Conn, app Manifest) *session {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &session{srv: srv, conn: conn, app: app, log: srv.log.With("app", app.App, "remote", conn.RemoteAddr().String()),
		ctx: ctx, cancel: cancel, out: make(chan []byte, 256), running: map[int64]context.CancelCauseFunc{}}
}

// run serves the session until the client goes away or the session is ended, then cancels its
// commands, waits for them, releases its devices and closes the connection.
func (s *session) run() {
	s.log.Info("localapi: app connected")
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); s.write() }()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watch() }()
	s.read()
	s.cancel(errClosed)
	s.wg.Wait()
	s.srv.owners.releaseAll(s)
	s.outMu.Lock()
	s.outClosed = true
	close(s.out)
	s.outMu.Unlock()
	<-writerDone
	s.close(websocket.CloseNormalClosure, "")
	s.log.Info("localapi: app disconnected", "cause", context.Cause(s.ctx))
}

// read reads messages until the connection fails or is closed.
func (s *session) read() {
	for {
		typ, b, err := s.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.log.Warn("localapi: message too large; connection closed", "limit", s.srv.cfg.MaxMessageBytes)
			}
			return
		}
		if typ != websocket.TextMessage {
			s.refuse(&DecodeError{Status: AckInvalidMessage, Reason: "a binary message: messages are JSON text"})
			continue
		}
		cmd, err := Decode(b)
		var de *DecodeError
		if errors.As(err, &de) {
			s.refuse(de)
			continue
		}
		s.dispatch(cmd)
	}
}

// write sends what send queued, one message at a time; after a failed write it discards.
func (s *session) write() {
	failed := false
	for b := range s.out {
		if failed {
			continue
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
			failed = true
			s.log.Info("localapi: write failed; closing", "err", err)
			s.end(errClosed, websocket.CloseGoingAway, "")
		}
	}
}

// send queues m for the client. A client that lets its queue fill up is disconnected.
func (s *session) send(m Message) {
	b, err := json.Marshal(m)
	if err != nil {
		s.log.Error("localapi: message not encoded", "name", m.Header.Name, "err", err)
		return
	}
	s.outMu.Lock()
	full := false
	if !s.outClosed {
		select {
		case s.out <- b:
		default:
			full = true
		}
	}
	s.outMu.Unlock()
	if full {
		s.log.Warn("localapi: app does not read its messages; closing")
		s.end(errClosed, websocket.ClosePolicyViolation, "messages not read")
	}
}

// end cancels the session's commands with cause and closes the connection.
func (s *session) end(cause error, code int, text string) {
	s.cancel(cause)
	s.close(code, text)
}

func (s *session) close(code int, text string) {
	s.closeOnce.Do(func() {
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		_ = s.conn.Close()
	})
}

// refuse answers a message the decoder refused: an acknowledge with its status, or an
// acknowledge and an error completion.
func (s *session) refuse(e *DecodeError) {
	s.log.Info("localapi: message refused", "request", e.RequestID, "name", e.Name, "status", e.Status, "code", e.Code, "reason", e.Reason)
	if e.Status != "" {
		s.send(Message{Header: Header{Name: e.Name, RequestID: e.RequestID, Type: TypeAcknowledge, Version: Version,
			Status: e.Status, ErrorDescription: e.Reason}, Payload: struct{}{}})
		return
	}
	cmd := Command{Name: e.Name, RequestID: e.RequestID}
	s.ack(cmd)
	s.complete(cmd, nil, &Error{Code: e.Code, Description: e.Reason})
}

func (s *session) ack(cmd Command) {
	s.send(Message{Header: Header{Name: cmd.Name, RequestID: cmd.RequestID, Type: TypeAcknowledge, Version: Version}, Payload: struct{}{}})
}

// complete sends cmd's completion: payload on success, else e's code, description and error code.
func (s *session) complete(cmd Command, payload any, e *Error) {
	h := Header{Name: cmd.Name, RequestID: cmd.RequestID, Type: TypeCompletion, Version: Version, CompletionCode: CodeSuccess}
	if e != nil {
		h.CompletionCode, h.ErrorDescription = e.Code, e.Description
		p := map[string]any{}
		for k, v := range e.Detail {
			p[k] = v
		}
		if e.ErrorCode != "" {
			p["errorCode"] = e.ErrorCode
		}
		payload = p
	}
	if payload == nil {
		payload = struct{}{}
	}
	s.send(Message{Header: h, Payload: payload})
}

// dispatch acknowledges cmd and runs it, or refuses it when its requestId is in use or too many
// commands run.
func (s *session) dispatch(cmd Command) {
	refuse := func(st AckStatus, why string) {
		s.refuse(&DecodeError{RequestID: cmd.RequestID, Name: cmd.Name, Status: st, Reason: why})
	}
	s.mu.Lock()
	if _, dup := s.running[cmd.RequestID]; dup {
		s.mu.Unlock()
		refuse(AckInvalidRequestID, fmt.Sprintf("requestId %d is the requestId of a command still running", cmd.RequestID))
		return
	}
	if len(s.running) >= s.srv.cfg.MaxInFlight && cmd.Name != "Common.Cancel" { // a way out of the limit
		s.mu.Unlock()
		refuse(AckTooManyRequests, fmt.Sprintf("%d commands of this connection are running; wait for a completion", len(s.running)))
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	s.running[cmd.RequestID] = cancel
	s.wg.Add(1)
	s.mu.Unlock()
	s.ack(cmd)
	go func() {
		defer s.wg.Done()
		s.execute(ctx, cmd)
	}()
}

// execute runs cmd under its timeout and sends its completion.
func (s *session) execute(ctx context.Context, cmd Command) {
	start := time.Now()
	r := &request{s: s, cmd: cmd}
	payload, err := s.runCommand(ctx, r)
	e := outcome(ctx, err)
	r.done.Store(true) // no event after the completion
	s.mu.Lock()
	cancel := s.running[cmd.RequestID]
	delete(s.running, cmd.RequestID) // the client may use the requestId again once it has the completion
	s.mu.Unlock()
	cancel(nil)
	s.complete(cmd, payload, e)
	level, code := slog.LevelDebug, CodeSuccess
	if e != nil {
		level, code = slog.LevelInfo, e.Code
	}
	s.log.Log(context.Background(), level, "localapi: command", "name", cmd.Name, "request", cmd.RequestID, "code", code,
		"millis", time.Since(start).Milliseconds())
}

// runCommand checks that the app may run cmd and runs its handler under the command's timeout.
func (s *session) runCommand(ctx context.Context, r *request) (any, error) {
	c, ok := commands[r.cmd.Name]
	switch {
	case !ok:
		return nil, fail(CodeInvalidCommand, "there is no command %s (Common.Capabilities lists them)", r.cmd.Name)
	case !s.app.Allows(c.service):
		return nil, &Error{Code: CodeUnsupportedCommand, ErrorCode: "notPermitted",
			Description: fmt.Sprintf("app %s may not use %s: its manifest does not ask for the %s service", s.app.App, r.cmd.Name, c.service)}
	case r.cmd.Timeout > s.srv.cfg.MaxTimeout:
		return nil, fail(CodeTimeoutNotSupported, "timeout %s is longer than the %s this agent allows", r.cmd.Timeout, s.srv.cfg.MaxTimeout)
	}
	limit := r.cmd.Timeout
	if limit == 0 {
		limit = s.srv.cfg.MaxTimeout
	}
	tctx, cancel := context.WithTimeoutCause(ctx, limit, errTimeOut)
	defer cancel()
	payload, err := c.run(tctx, r)
	if err != nil && tctx.Err() != nil {
		return nil, outcome(tctx, err) // what ended the command, not how the device took it
	}
	return payload, err
}

// cancelRunning cancels the commands ids of the session (all but except when ids is empty) and
// returns those it canceled (Common.Cancel).
func (s *session) cancelRunning(ids []int64, except int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	canceled := []int64{}
	for id, cancel := range s.running {
		if id != except && (len(ids) == 0 || slices.Contains(ids, id)) {
			cancel(errCanceled)
			canceled = append(canceled, id)
		}
	}
	slices.Sort(canceled)
	return canceled
}

// request is a command being run: its handler decodes the payload, picks and claims devices and
// emits events through it.
type request struct {
	s    *session
	cmd  Command
	done atomic.Bool
}

// emit sends an event of the command (XFS4IoT API, Event Messages).
func (r *request) emit(name string, payload any) {
	if r.done.Load() {
		return
	}
	r.s.send(Message{Header: Header{Name: name, RequestID: r.cmd.RequestID, Type: TypeEvent, Version: Version}, Payload: payload})
}

// decode reads the command's payload into T, refusing unknown fields.
func decode[T any](r *request) (T, error) {
	var v T
	d := json.NewDecoder(bytes.NewReader(r.cmd.Payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return v, fail(CodeInvalidData, "payload of %s: %v", r.cmd.Name, err)
	}
	return v, nil
}

// device picks the device a command uses: the one named (which must be of one of classes), or
// else the first connected device of those classes (what says what that is: "ID card reader").
func (r *request) device(named, what string, classes ...profile.Class) (string, error) {
	snap := r.s.srv.cfg.Devices.Snapshot()
	var first string
	for _, d := range snap.Devices {
		switch {
		case named != "" && d.ID == named && !slices.Contains(classes, profile.Class(d.Class)):
			return "", fail(CodeUnsupportedData, "device %s is a %s, not a %s", named, d.Class, what)
		case named != "" && d.ID == named:
			return named, nil
		case named == "" && slices.Contains(classes, profile.Class(d.Class)) && d.Connected:
			return d.ID, nil
		case named == "" && slices.Contains(classes, profile.Class(d.Class)) && first == "":
			first = d.ID
		}
	}
	switch {
	case named != "":
		return "", fail(CodeInvalidData, "there is no device %s at this kiosk (Common.Status lists them)", named)
	case first == "":
		return "", fail(CodeUnsupportedCommand, "this kiosk has no %s", what)
	}
	return first, nil // not connected: the device manager says so
}

// take picks the device as device does and makes the session its owner while the command runs;
// call release when done with it.
func (r *request) take(named, what string, classes ...profile.Class) (device string, release func(), err error) {
	if device, err = r.device(named, what, classes...); err != nil {
		return "", nil, err
	}
	release, e := r.s.srv.owners.claim(device, r.s, r.cmd.RequestID)
	if e != nil {
		return "", nil, e
	}
	return device, release, nil
}

// takeNamed is take for commands whose payload is {"device": ID} or empty.
func (r *request) takeNamed(what string, classes ...profile.Class) (device string, release func(), err error) {
	p, err := decode[devicePayload](r)
	if err != nil {
		return "", nil, err
	}
	return r.take(p.Device, what, classes...)
}

// deviceErr maps an error of the device manager to a completion.
func deviceErr(device string, err error) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, devices.ErrNotConnected):
		return fail(CodeDeviceNotReady, "device %s is not connected", device)
	case errors.Is(err, devices.ErrUnsupported):
		return fail(CodeUnsupportedData, "%v", err)
	case errors.Is(err, devices.ErrUnknownDevice):
		return fail(CodeInvalidData, "%v", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fail(CodeHardwareError, "device %s: %v", device, err)
}
