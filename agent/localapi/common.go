package localapi

import (
	"context"
	"slices"
	"sort"

	"github.com/kioskfleet/kioskfleet/agent/devices"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
)

// command is one command of the API: the service an app's manifest must ask for, and its handler.
type command struct {
	service string
	run     func(ctx context.Context, r *request) (any, error)
}

// commands are every command, by name (set in init: Common.Capabilities lists them).
var commands map[string]command

func init() {
	commands = map[string]command{
		"Common.Status":        {ServiceCommon, commonStatus},
		"Common.Capabilities":  {ServiceCommon, commonCapabilities},
		"Common.Cancel":        {ServiceCommon, commonCancel},
		"Common.Acquire":       {ServiceCommon, commonAcquire},
		"Common.Release":       {ServiceCommon, commonRelease},
		"IdCard.Read":          {ServiceIdCard, idCardRead},
		"Login.IdCard":         {ServiceLogin, loginIdCard},
		"Printer.PrintNative":  {ServicePrinter, printerPrintNative},
		"Printer.PrintReceipt": {ServicePrinter, printerPrintReceipt},
		"Scanner.Scan":         {ServiceScanner, scannerScan},
		"BarcodeReader.Read":   {ServiceBarcodeReader, barcodeRead},
	}
}

// events are the events and unsolicited events of each service.
var events = map[string][]string{
	ServiceCommon:  {"Common.StatusChangedEvent"},
	ServiceIdCard:  {"IdCard.InsertCardEvent"},
	ServiceLogin:   {"IdCard.InsertCardEvent"},
	ServicePrinter: {"Printer.JobProgressEvent", "Printer.NoMediaEvent", "Printer.PaperThresholdEvent"},
}

// serviceOf is the service through which apps use a device of class c.
func serviceOf(c profile.Class) string {
	switch c {
	case profile.ClassIDReader:
		return ServiceIdCard
	case profile.ClassReceiptPrinter, profile.ClassDocumentPrinter:
		return ServicePrinter
	case profile.ClassDocumentScanner:
		return ServiceScanner
	case profile.ClassQRScanner:
		return ServiceBarcodeReader
	}
	return ""
}

// sees reports whether the app may see a device of class c: it asks for its service (or, for
// the card reader, logs citizens in with it).
func (m *Manifest) sees(c profile.Class) bool {
	svc := serviceOf(c)
	return svc != "" && m.Allows(svc) || c == profile.ClassIDReader && m.Allows(ServiceLogin)
}

// DeviceView is a device as Common.Status and Common.StatusChangedEvent show it.
type DeviceView struct {
	Device       string               `json:"device"`
	Class        profile.Class        `json:"class"`
	Service      string               `json:"service"`
	Manufacturer string               `json:"manufacturer,omitempty"`
	Model        string               `json:"model,omitempty"`
	Connected    bool                 `json:"connected"`
	Status       devices.State        `json:"status"` // ok, degraded, fault, unknown
	Reasons      []string             `json:"reasons,omitempty"`
	Consumables  []devices.Consumable `json:"consumables,omitempty"`
	Since        int64                `json:"since"`           // Unix ms of the last change of status or reasons
	Owner        string               `json:"owner,omitempty"` // "you", "another app", or none
}

// visible returns the devices the session's app may see, in the manager's order.
func (s *session) visible() []DeviceView {
	var out []DeviceView
	for _, d := range s.srv.cfg.Devices.Snapshot().Devices {
		if !s.app.sees(profile.Class(d.Class)) {
			continue
		}
		out = append(out, DeviceView{Device: d.ID, Class: profile.Class(d.Class), Service: serviceOf(profile.Class(d.Class)), Manufacturer: d.Manufacturer,
			Model: d.Model, Connected: d.Connected, Status: d.Status, Reasons: d.Reasons, Consumables: d.Consumables,
			Since: d.Since, Owner: s.srv.owners.owner(d.ID, s)})
	}
	return out
}

// Common.Status (XFS4IoT Common.Status): every device the app may see.
func commonStatus(_ context.Context, r *request) (any, error) {
	if _, err := decode[struct{}](r); err != nil {
		return nil, err
	}
	return map[string]any{"devices": nonNil(r.s.visible())}, nil
}

// ServiceCaps is one service in Common.Capabilities.
type ServiceCaps struct {
	Name     string   `json:"name"`
	Commands []string `json:"commands"`
	Events   []string `json:"events"`
}

// Common.Capabilities (XFS4IoT Common.Capabilities): the services, commands and events the app
// may use, its devices, and the agent's limits.
func commonCapabilities(_ context.Context, r *request) (any, error) {
	if _, err := decode[struct{}](r); err != nil {
		return nil, err
	}
	by := map[string]*ServiceCaps{}
	for name, c := range commands {
		if !r.s.app.Allows(c.service) {
			continue
		}
		if by[c.service] == nil {
			by[c.service] = &ServiceCaps{Name: c.service, Events: nonNil(events[c.service])}
		}
		by[c.service].Commands = append(by[c.service].Commands, name)
	}
	var svcs []ServiceCaps
	for _, sc := range by {
		sort.Strings(sc.Commands)
		svcs = append(svcs, *sc)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	type dev struct {
		Device  string        `json:"device"`
		Class   profile.Class `json:"class"`
		Service string        `json:"service"`
	}
	var devs []dev
	for _, d := range r.s.visible() {
		devs = append(devs, dev{d.Device, d.Class, d.Service})
	}
	cfg := r.s.srv.cfg
	return map[string]any{
		"version": Version, "app": r.s.app.App, "services": svcs, "devices": nonNil(devs),
		"maxMessageBytes": cfg.MaxMessageBytes, "maxTimeout": cfg.MaxTimeout.Milliseconds(), "maxInFlight": cfg.MaxInFlight,
	}, nil
}

// Common.Cancel (XFS4IoT Common.Cancel): cancel the named commands of this connection (all of
// them without requestIds); each completes with canceled. Others' request IDs are ignored.
func commonCancel(_ context.Context, r *request) (any, error) {
	p, err := decode[struct {
		RequestIDs []int64 `json:"requestIds"`
	}](r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"canceled": r.s.cancelRunning(p.RequestIDs, r.cmd.RequestID)}, nil
}

type devicePayload struct {
	Device string `json:"device"`
}

// Common.Acquire: own a device until Common.Release or disconnect, so that no other app can use
// it in between (a kiosk extension of XFS4IoT).
func commonAcquire(_ context.Context, r *request) (any, error) {
	d, err := r.visibleDevice()
	if err != nil {
		return nil, err
	}
	if e := r.s.srv.owners.acquire(d, r.s); e != nil {
		return nil, e
	}
	return devicePayload{d}, nil
}

// Common.Release: end Common.Acquire.
func commonRelease(_ context.Context, r *request) (any, error) {
	d, err := r.visibleDevice()
	if err != nil {
		return nil, err
	}
	if e := r.s.srv.owners.release(d, r.s); e != nil {
		return nil, e
	}
	return devicePayload{d}, nil
}

// visibleDevice reads {"device": ID} and checks that the app may see that device.
func (r *request) visibleDevice() (string, error) {
	p, err := decode[devicePayload](r)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(r.s.visible(), func(v DeviceView) bool { return v.Device == p.Device }) {
		return p.Device, nil
	}
	return "", fail(CodeInvalidData, "there is no device %q that this app may use (Common.Status lists them)", p.Device)
}

// watch sends Common.StatusChangedEvent for every change of a device the app may see, and
// Printer.PaperThresholdEvent when a printer's paper level changes (XFS4IoT API, Unsolicited
// Event Messages), until the session ends.
func (s *session) watch() {
	var last map[string]DeviceView
	for {
		changed := s.srv.cfg.Devices.Changed() // before the snapshot: no change is missed
		now := map[string]DeviceView{}
		for _, v := range s.visible() {
			v.Owner = ""
			now[v.Device] = v
			old, seen := last[v.Device]
			if last == nil || seen && sameStatus(old, v) {
				continue
			}
			s.send(Message{Header: Header{Name: "Common.StatusChangedEvent", Type: TypeUnsolicited, Version: Version}, Payload: v})
			if t := paperThreshold(v); v.Service == ServicePrinter && t != "" && t != paperThreshold(old) {
				s.send(Message{Header: Header{Name: "Printer.PaperThresholdEvent", Type: TypeUnsolicited, Version: Version},
					Payload: map[string]string{"device": v.Device, "paperSource": "upper", "threshold": t}})
			}
		}
		last = now
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
		}
	}
}

func sameStatus(a, b DeviceView) bool {
	return a.Connected == b.Connected && a.Status == b.Status && slices.Equal(a.Reasons, b.Reasons) &&
		slices.Equal(a.Consumables, b.Consumables)
}

// paperThreshold is XFS4IoT's paper threshold (full, low, out) of a device's paper level.
func paperThreshold(v DeviceView) string {
	for _, c := range v.Consumables {
		if c.Name == "paper" {
			return map[string]string{devices.LevelOK: "full", devices.LevelLow: "low", devices.LevelEmpty: "out"}[c.Level]
		}
	}
	return ""
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
