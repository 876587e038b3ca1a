package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// DeviceConfig is a kiosk's device configuration (devices.yaml): which device is where and,
// optionally, with which profile. The agent's device manager reads it; devsim writes it. JSON is
// accepted too (YAML is a superset).
type DeviceConfig struct {
	Devices []DeviceEntry `yaml:"devices" json:"devices"`
}

// DeviceEntry is one configured device. Exactly one of Path, USB, URI and SANE says where it is.
type DeviceEntry struct {
	ID      string            `yaml:"id" json:"id"` // local name, unique on the kiosk: idcard0, receipt0
	Class   Class             `yaml:"class,omitempty" json:"class,omitempty"`
	Profile string            `yaml:"profile,omitempty" json:"profile,omitempty"` // else matched
	Path    string            `yaml:"path,omitempty" json:"path,omitempty"`       // serial port
	USB     *USBMatch         `yaml:"usb,omitempty" json:"usb,omitempty"`         // USB device
	URI     string            `yaml:"uri,omitempty" json:"uri,omitempty"`         // network device
	SANE    string            `yaml:"sane,omitempty" json:"sane,omitempty"`       // SANE device name
	Env     map[string]string `yaml:"env,omitempty" json:"env,omitempty"`         // e.g. SANE_CONFIG_DIR
}

// Attached returns what Match needs to know about e.
func (e DeviceEntry) Attached() Attached {
	a := Attached{Path: e.Path, URI: e.URI, SANE: e.SANE, Class: e.Class, Profile: e.Profile}
	if e.USB != nil {
		v, err1 := ParseUSBID(e.USB.VID)
		p, err2 := ParseUSBID(e.USB.PID)
		if err1 == nil && err2 == nil {
			a.USB = &USBIDs{v, p}
		}
	}
	return a
}

// LoadDeviceConfig reads and checks a device configuration file, reporting every problem.
func LoadDeviceConfig(path string) (*DeviceConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return ParseDeviceConfig(path, data)
}

// ParseDeviceConfig parses a device configuration; name is used in problems.
func ParseDeviceConfig(name string, data []byte) (*DeviceConfig, error) {
	var ps Problems
	add := func(line int, format string, a ...any) {
		ps = append(ps, Problem{File: name, Line: line, Msg: fmt.Sprintf(format, a...)})
	}
	if len(data) > MaxFileBytes {
		add(0, "file is %d bytes, more than %d", len(data), MaxFileBytes)
		return nil, ps
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, msg := yamlErrLine(err)
		add(line, "%s", msg)
		return nil, ps
	}
	lines := map[string]int{}
	if len(root.Content) == 1 {
		index(root.Content[0], "", lines)
	}
	var c DeviceConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		line, msg := yamlErrLine(err)
		if te, ok := err.(*yaml.TypeError); ok {
			for _, e := range te.Errors {
				line, msg = 0, e
				if m := reTypeErrLine.FindStringSubmatch(e); m != nil {
					fmt.Sscan(m[1], &line)
					msg = m[2]
				}
				if m := reUnknownKey.FindStringSubmatch(msg); m != nil {
					msg = fmt.Sprintf("unknown key %q", m[1])
				}
				add(line, "%s", msg)
			}
		} else {
			add(line, "%s", msg)
		}
		return nil, ps.err()
	}
	seen := map[string]bool{}
	for i, e := range c.Devices {
		at := fmt.Sprintf("devices[%d]", i)
		l := lines[at]
		if !validID(e.ID) {
			add(l, "%s: id %q must be 1..64 characters of [a-z0-9-]", at, e.ID)
		} else if seen[e.ID] {
			add(l, "%s: duplicate id %q", at, e.ID)
		}
		seen[e.ID] = true
		n := 0
		for _, set := range []bool{e.Path != "", e.USB != nil, e.URI != "", e.SANE != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			add(l, "%s: give exactly one of path, usb, uri, sane (got %d)", at, n)
		}
		if e.Class != "" {
			if _, ok := classCapabilities[e.Class]; !ok {
				add(l, "%s: unknown class %q", at, e.Class)
			}
		}
		if e.USB != nil {
			if _, err := ParseUSBID(e.USB.VID); err != nil {
				add(l, "%s: usb vid: %v", at, err)
			}
			if _, err := ParseUSBID(e.USB.PID); err != nil {
				add(l, "%s: usb pid: %v", at, err)
			}
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// WriteDeviceConfig writes c to path atomically (YAML, or JSON when path ends in .json).
func WriteDeviceConfig(path string, c *DeviceConfig) error {
	var data []byte
	var err error
	if strings.HasSuffix(path, ".json") {
		data, err = jsonIndent(c)
	} else {
		data, err = yaml.Marshal(c)
	}
	if err != nil {
		return fmt.Errorf("profile: encode device config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devices-*")
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("profile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }
