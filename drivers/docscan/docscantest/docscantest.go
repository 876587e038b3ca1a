// Package docscantest provides document-scanner peers for tests: a private SANE configuration
// that loads only the "test" backend, and an eSCL scanner (httptest on loopback) that speaks the
// documented XML, checks the ScanSettings it is sent, returns generated PNG pages and injects
// faults (busy, warming up, ADF empty, ADF jam).
package docscantest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SANEConfig returns a SANE_CONFIG_DIR whose dll.conf lists only the test backend. It skips the
// test when scanimage is not installed (Debian sane-utils; .ci/install-peers installs it).
func SANEConfig(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("scanimage"); err != nil {
		t.Skipf("docscantest: scanimage not installed (Debian sane-utils): %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dll.conf"), []byte("test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Fault is an injected eSCL scanner condition.
type Fault int

// Faults.
const (
	Busy     Fault = iota // POST ScanJobs answers 503
	WarmUp                // the first two NextDocument calls of a job answer 503
	ADFEmpty              // AdfState ScannerAdfEmpty
	ADFJam                // the feeder jams after the first page: NextDocument 500, AdfState ScannerAdfJam
)

// Settings is a ScanSettings request as the server parsed it.
type Settings struct {
	Version     string `xml:"Version"`
	InputSource string `xml:"InputSource"`
	ColorMode   string `xml:"ColorMode"`
	XResolution int    `xml:"XResolution"`
	YResolution int    `xml:"YResolution"`
	Format      string `xml:"DocumentFormat"`
	FormatExt   string `xml:"DocumentFormatExt"`
	Region      struct {
		Units  string `xml:"ContentRegionUnits"`
		Width  int    `xml:"Width"`
		Height int    `xml:"Height"`
	} `xml:"ScanRegions>ScanRegion"`
}

// ESCL is a simulated eSCL scanner.
type ESCL struct {
	*httptest.Server
	Base     string // URL of the eSCL root, .../eSCL
	ADFPages int    // pages in the feeder (default 3)

	mu       sync.Mutex
	faults   map[Fault]bool
	jobs     map[string]*job
	next     int
	settings []Settings
	deleted  int
}

type job struct {
	s       Settings
	served  int
	tries   int
	aborted bool
}

// NewESCL starts a scanner on 127.0.0.1; it stops with the test.
func NewESCL(t testing.TB) *ESCL {
	s := &ESCL{ADFPages: 3, faults: map[Fault]bool{}, jobs: map[string]*job{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eSCL/ScannerCapabilities", s.caps)
	mux.HandleFunc("GET /eSCL/ScannerStatus", s.status)
	mux.HandleFunc("POST /eSCL/ScanJobs", s.post)
	mux.HandleFunc("GET /eSCL/ScanJobs/{id}/NextDocument", s.nextDoc)
	mux.HandleFunc("DELETE /eSCL/ScanJobs/{id}", s.del)
	s.Server = httptest.NewServer(mux)
	s.Base = s.URL + "/eSCL"
	t.Cleanup(s.Close)
	return s
}

// SetFault turns a fault on or off.
func (s *ESCL) SetFault(f Fault, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[f] = on
}

// Received returns the ScanSettings received so far.
func (s *ESCL) Received() []Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Settings(nil), s.settings...)
}

// Deleted is how many jobs the client deleted.
func (s *ESCL) Deleted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted
}

const inputCaps = `
      <scan:MinWidth>16</scan:MinWidth><scan:MaxWidth>2550</scan:MaxWidth>
      <scan:MinHeight>16</scan:MinHeight><scan:MaxHeight>3508</scan:MaxHeight>
      <scan:SettingProfiles><scan:SettingProfile>
        <scan:ColorModes><scan:ColorMode>RGB24</scan:ColorMode><scan:ColorMode>Grayscale8</scan:ColorMode></scan:ColorModes>
        <scan:DocumentFormats>
          <pwg:DocumentFormat>image/jpeg</pwg:DocumentFormat><pwg:DocumentFormat>image/png</pwg:DocumentFormat>
          <pwg:DocumentFormat>application/pdf</pwg:DocumentFormat>
          <scan:DocumentFormatExt>image/jpeg</scan:DocumentFormatExt><scan:DocumentFormatExt>image/png</scan:DocumentFormatExt>
        </scan:DocumentFormats>
        <scan:SupportedResolutions><scan:DiscreteResolutions>
          <scan:DiscreteResolution><scan:XResolution>75</scan:XResolution><scan:YResolution>75</scan:YResolution></scan:DiscreteResolution>
          <scan:DiscreteResolution><scan:XResolution>150</scan:XResolution><scan:YResolution>150</scan:YResolution></scan:DiscreteResolution>
          <scan:DiscreteResolution><scan:XResolution>300</scan:XResolution><scan:YResolution>300</scan:YResolution></scan:DiscreteResolution>
        </scan:DiscreteResolutions></scan:SupportedResolutions>
      </scan:SettingProfile></scan:SettingProfiles>`

// Capabilities is the ScannerCapabilities document served.
var Capabilities = `<?xml version="1.0" encoding="UTF-8"?>
<scan:ScannerCapabilities xmlns:pwg="http://www.pwg.org/schemas/2010/12/sm" xmlns:scan="http://schemas.hp.com/imaging/escl/2011/05/03">
  <pwg:Version>2.63</pwg:Version>
  <pwg:MakeAndModel>Kioskfleet eSCL Simulator</pwg:MakeAndModel>
  <pwg:SerialNumber>SIM0001</pwg:SerialNumber>
  <scan:Platen><scan:PlatenInputCaps>` + inputCaps + `
  </scan:PlatenInputCaps></scan:Platen>
  <scan:Adf><scan:AdfSimplexInputCaps>` + inputCaps + `
  </scan:AdfSimplexInputCaps></scan:Adf>
</scan:ScannerCapabilities>
`

func (s *ESCL) caps(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, Capabilities)
}

func (s *ESCL) status(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	state, adf := "Idle", "ScannerAdfLoaded"
	if s.faults[Busy] {
		state = "Processing"
	}
	if s.faults[ADFEmpty] {
		adf = "ScannerAdfEmpty"
	}
	for _, j := range s.jobs {
		if j.aborted {
			adf = "ScannerAdfJam"
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<scan:ScannerStatus xmlns:pwg="http://www.pwg.org/schemas/2010/12/sm" xmlns:scan="http://schemas.hp.com/imaging/escl/2011/05/03">
  <pwg:Version>2.63</pwg:Version>
  <pwg:State>%s</pwg:State>
  <scan:AdfState>%s</scan:AdfState>
</scan:ScannerStatus>
`, state, adf)
}

func (s *ESCL) post(w http.ResponseWriter, r *http.Request) {
	var st Settings
	dec := xml.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&st); err != nil {
		http.Error(w, "bad ScanSettings: "+err.Error(), http.StatusBadRequest)
		return
	}
	if msg := check(st); msg != "" {
		http.Error(w, msg, http.StatusConflict)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings = append(s.settings, st)
	if s.faults[Busy] {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	s.next++
	id := strconv.Itoa(s.next)
	s.jobs[id] = &job{s: st}
	w.Header().Set("Location", s.Base+"/ScanJobs/"+id)
	w.WriteHeader(http.StatusCreated)
}

// check validates settings the way a strict scanner does.
func check(st Settings) string {
	switch {
	case st.Version == "":
		return "missing pwg:Version"
	case st.InputSource != "Platen" && st.InputSource != "Feeder":
		return "bad InputSource " + st.InputSource
	case st.ColorMode != "RGB24" && st.ColorMode != "Grayscale8":
		return "unsupported ColorMode " + st.ColorMode
	case st.XResolution != st.YResolution || !strings.Contains(" 75 150 300 ", " "+strconv.Itoa(st.XResolution)+" "):
		return "unsupported resolution"
	case st.Format != "image/png" && st.Format != "image/jpeg":
		return "unsupported DocumentFormat " + st.Format
	case st.Region.Units != "escl:ThreeHundredthsOfInches" || st.Region.Width <= 0 || st.Region.Height <= 0:
		return "bad ScanRegion"
	}
	return ""
}

func (s *ESCL) nextDoc(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("id")]
	if !ok {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	j.tries++
	if s.faults[WarmUp] && j.tries <= 2 {
		s.mu.Unlock()
		http.Error(w, "warming up", http.StatusServiceUnavailable)
		return
	}
	pages := 1
	if j.s.InputSource == "Feeder" {
		pages = s.ADFPages
		if s.faults[ADFEmpty] {
			pages = 0
		}
		if s.faults[ADFJam] && j.served == 1 {
			j.aborted = true
		}
	}
	if j.aborted {
		s.mu.Unlock()
		http.Error(w, "feeder jammed", http.StatusInternalServerError)
		return
	}
	if j.served >= pages {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	j.served++
	n, st := j.served, j.s
	s.mu.Unlock()
	w.Header().Set("Content-Type", "image/png")
	w.Write(Page(st.XResolution, st.ColorMode == "Grayscale8", n))
}

func (s *ESCL) del(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[r.PathValue("id")]; !ok {
		http.NotFound(w, r)
		return
	}
	delete(s.jobs, r.PathValue("id"))
	s.deleted++
}

// Page renders a small test page (1 x 1.5 inches at dpi) as PNG, with n stripes.
func Page(dpi int, gray bool, n int) []byte {
	w, h := dpi, dpi*3/2
	var img image.Image
	if gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				g.SetGray(x, y, color.Gray{Y: uint8(255 - (y*n*8/h%2)*200)})
			}
		}
		img = g
	} else {
		c := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				c.Set(x, y, color.RGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: uint8(n * 60), A: 255})
			}
		}
		img = c
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err) // encoding an in-memory image cannot fail
	}
	return b.Bytes()
}
