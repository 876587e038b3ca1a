package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kioskfleet/kioskfleet/pkg/atomicfile"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/drivers/qrscan"
)

// Profiles the simulated devices are configured with (firmware-profiles/).
const (
	profIDCard = "huaxin-hx-r200-serial"
	profESCPOS = "hengtai-kp80-serial"
	profQR     = "saoma-qr20-serial"
	profIPP    = "generic-ipp-everywhere-a4"
	profSANE   = "sane-generic-flatbed"
)

// kiosk is a running set of simulated devices.
type kiosk struct {
	dir    string
	serial []*device
	byID   map[string]*device
	idcard *idcardSim
	qr     *qrSim
	ipp    *ippPrinter  // nil when not started
	sane   *saneScanner // nil when scanimage is not installed
}

// plugger is a device the control API can unplug and plug in again.
type plugger interface {
	plug() error
	unplug()
	info() info
}

// plugger returns device id, or nil.
func (k *kiosk) plugger(id string) plugger {
	switch {
	case k.byID[id] != nil:
		return k.byID[id]
	case id == "a4" && k.ipp != nil:
		return k.ipp
	case id == "scan0" && k.sane != nil:
		return k.sane
	}
	return nil
}

// all returns every device in the order of the configuration.
func (k *kiosk) all() []plugger {
	var out []plugger
	for _, d := range k.serial {
		out = append(out, d)
	}
	if k.ipp != nil {
		out = append(out, k.ipp)
	}
	if k.sane != nil {
		out = append(out, k.sane)
	}
	return out
}

func runKiosk(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kiosk", "kiosk --dir DIR [flags]", stderr)
	dir := fs.String("dir", "", "directory for device links, devices.yaml, control.url and the IPP spool (required)")
	format := fs.String("format", "yaml", "device configuration format: yaml (DIR/devices.yaml) or json (DIR/devices.json)")
	noIPP := fs.Bool("no-ipp", false, "do not start ippeveprinter")
	noSANE := fs.Bool("no-sane", false, "do not configure the SANE test scanner")
	card := fs.String("card", "resident", "sample card on the ID reader at start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: kiosk needs --dir", errUsage)
	}
	// The paths go into devices.yaml and to the IPP printer's daemons, which run elsewhere.
	var err error
	if *dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	if *format != "yaml" && *format != "json" {
		return fmt.Errorf("%w: --format must be yaml or json", errUsage)
	}
	// devices.yaml is read by an agent elsewhere, and the daemons behind the IPP printer change
	// their working folder: every path written or handed on is absolute.
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	*dir = abs
	if err := os.MkdirAll(filepath.Join(*dir, "dev"), 0o755); err != nil {
		return err
	}
	// Files of an earlier run would make waiting scripts start before this one is ready.
	stale := []string{"devices.yaml", "devices.json", "control.url"}
	for _, f := range stale {
		os.Remove(filepath.Join(*dir, f))
	}
	defer func() { // the devices are gone with this process
		for _, f := range stale {
			os.Remove(filepath.Join(*dir, f))
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	k := &kiosk{dir: *dir, byID: map[string]*device{}}
	idc, err := newIDCard(ctx, *card)
	if err != nil {
		return err
	}
	k.idcard = idc
	k.qr = &qrSim{suffix: qrscan.SuffixCR} // as the profile says
	k.serial = []*device{
		{ID: "idcard0", Kind: "idcard", Profile: profIDCard, sim: idc},
		{ID: "receipt0", Kind: "escpos", Profile: profESCPOS, sim: newESCPOS()},
		{ID: "qr0", Kind: "qrscan", Profile: profQR, sim: k.qr},
	}
	defer func() {
		for _, d := range k.serial {
			d.unplug()
		}
	}()
	cfg := &profile.DeviceConfig{}
	for _, d := range k.serial {
		d.Link = filepath.Join(*dir, "dev", d.ID)
		if err := d.plug(); err != nil {
			return err
		}
		k.byID[d.ID] = d
		cfg.Devices = append(cfg.Devices, profile.DeviceEntry{ID: d.ID, Profile: d.Profile, Path: d.Link})
	}

	if !*noIPP {
		p, err := startIPP(ctx, filepath.Join(*dir, "ipp"), stderr)
		switch {
		case errors.Is(err, errNotInstalled):
			fmt.Fprintf(stderr, "devsim: no IPP printer: %v\n", err)
		case err != nil:
			return err
		default:
			k.ipp = p
			defer p.stop()
			cfg.Devices = append(cfg.Devices, profile.DeviceEntry{ID: "a4", Profile: profIPP, URI: p.uri})
		}
	}
	if !*noSANE {
		if _, err := exec.LookPath("scanimage"); err != nil {
			fmt.Fprintf(stderr, "devsim: no SANE scanner: scanimage not installed (Debian sane-utils)\n")
		} else {
			if k.sane, err = newSANE(filepath.Join(*dir, "sane")); err != nil {
				return err
			}
			cfg.Devices = append(cfg.Devices, profile.DeviceEntry{ID: "scan0", Profile: profSANE, SANE: saneDevice,
				Env: map[string]string{"SANE_CONFIG_DIR": k.sane.dir}})
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: k.handler(), ReadHeaderTimeout: 5 * time.Second}
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); srv.Serve(l) }()
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		srv.Shutdown(sctx)
		<-srvDone
	}()

	// The configuration files appear last, so that their presence means everything is ready.
	cfgPath := filepath.Join(*dir, "devices."+*format)
	url := "http://" + l.Addr().String()
	if err := profile.WriteDeviceConfig(cfgPath, cfg); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(*dir, "control.url"), []byte(url+"\n"), 0o644); err != nil {
		return err
	}
	for _, d := range k.serial {
		i := d.info()
		fmt.Fprintf(stdout, "%-9s %-7s %s -> %s\n", i.ID, i.Kind, i.Path, i.Pty)
	}
	if k.ipp != nil {
		fmt.Fprintf(stdout, "%-9s %-7s %s\n", "a4", "ipp", k.ipp.uri)
	}
	if k.sane != nil {
		fmt.Fprintf(stdout, "%-9s %-7s %s (SANE_CONFIG_DIR=%s)\n", "scan0", "sane", saneDevice, k.sane.dir)
	}
	fmt.Fprintf(stdout, "config    %s\ncontrol   %s\n", cfgPath, url)
	<-ctx.Done()
	return nil
}

// handler is the control API:
//
//	GET  /devices                            every device, its paths and active faults
//	POST /devices/{id}/faults/{name}?on=BOOL  turn a fault on (default) or off
//	POST /devices/{id}/unplug                 pull a device's cable: a serial device's pty and link go
//	                                          away, the IPP printer is switched off, the SANE backend
//	                                          is left out of dll.conf
//	POST /devices/{id}/replug                 plug it in again (a new pty behind the same link; the
//	                                          printer on the same port), faults kept
//	POST /devices/{id}/card/{name}            put a sample card on the ID reader (none: take it off)
//	POST /devices/{id}/scan                   scan the request body (a code) on the QR scanner
func (k *kiosk) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /devices/{id}/scan", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "qr0" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no QR scanner %q", r.PathValue("id"))})
			return
		}
		code, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil {
			err = k.qr.Scan(string(code))
		}
		if err != nil {
			writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"device": "qr0", "bytes": len(code)})
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		var out []info
		for _, d := range k.all() {
			out = append(out, d.info())
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /devices/{id}/faults/{name}", func(w http.ResponseWriter, r *http.Request) {
		on := r.URL.Query().Get("on") != "false"
		id, name := r.PathValue("id"), r.PathValue("name")
		var err error
		switch {
		case k.ipp != nil && id == "a4":
			err = k.ipp.setFault(name, on)
		case k.byID[id] != nil:
			err = k.byID[id].sim.SetFault(name, on)
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no device %q", id)})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"device": id, "fault": name, "on": on})
	})
	plugging := func(plug bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d := k.plugger(r.PathValue("id"))
			if d == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no device %q", r.PathValue("id"))})
				return
			}
			if plug {
				if err := d.plug(); err != nil {
					writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
					return
				}
			} else {
				d.unplug()
			}
			writeJSON(w, http.StatusOK, d.info())
		}
	}
	mux.HandleFunc("POST /devices/{id}/unplug", plugging(false))
	mux.HandleFunc("POST /devices/{id}/replug", plugging(true))
	mux.HandleFunc("POST /devices/{id}/card/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "idcard0" {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no ID reader %q", r.PathValue("id"))})
			return
		}
		if err := k.idcard.SetCard(r.PathValue("name")); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, k.byID["idcard0"].info())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// runCtl is the command-line client of the control API.
func runCtl(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ctl", "ctl --dir DIR devices | fault ID NAME [on|off] | unplug ID | replug ID | card ID NAME | scan ID CODE", stderr)
	dir := fs.String("dir", "", "the directory of a running devsim kiosk (reads DIR/control.url)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: ctl needs --dir", errUsage)
	}
	b, err := os.ReadFile(filepath.Join(*dir, "control.url"))
	if err != nil {
		return fmt.Errorf("is devsim kiosk running? %w", err)
	}
	base := strings.TrimSpace(string(b))
	a := fs.Args()
	method, path, body := "POST", "", ""
	switch {
	case len(a) == 1 && a[0] == "devices":
		method, path = "GET", "/devices"
	case (len(a) == 3 || len(a) == 4) && a[0] == "fault":
		on := "true"
		if len(a) == 4 {
			switch a[3] {
			case "on":
			case "off":
				on = "false"
			default:
				return fmt.Errorf("%w: fault state must be on or off, not %q", errUsage, a[3])
			}
		}
		path = "/devices/" + a[1] + "/faults/" + a[2] + "?on=" + on
	case len(a) == 2 && (a[0] == "unplug" || a[0] == "replug"):
		path = "/devices/" + a[1] + "/" + a[0]
	case len(a) == 3 && a[0] == "card":
		path = "/devices/" + a[1] + "/card/" + a[2]
	case len(a) == 3 && a[0] == "scan":
		path, body = "/devices/"+a[1]+"/scan", a[2]
	default:
		return fmt.Errorf("%w: ctl: bad command %q", errUsage, strings.Join(a, " "))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	stdout.Write(answer)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ctl: %s", resp.Status)
	}
	return nil
}
