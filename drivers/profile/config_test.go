package profile

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDeviceConfigRoundTrip(t *testing.T) {
	c := &DeviceConfig{Devices: []DeviceEntry{
		{ID: "idcard0", Class: ClassIDReader, Profile: "huaxin-hx-r200-serial", Path: "/dev/pts/3"},
		{ID: "usb0", USB: &USBMatch{VID: "0400", PID: "c35a"}},
		{ID: "a4", URI: "ipp://127.0.0.1:8631/ipp/print"},
		{ID: "scan0", SANE: "test:0", Env: map[string]string{"SANE_CONFIG_DIR": "/tmp/x"}},
	}}
	for _, name := range []string{"devices.yaml", "devices.json"} {
		p := filepath.Join(t.TempDir(), name)
		if err := WriteDeviceConfig(p, c); err != nil {
			t.Fatal(err)
		}
		got, err := LoadDeviceConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Devices) != 4 || got.Devices[3].Env["SANE_CONFIG_DIR"] != "/tmp/x" || got.Devices[1].Attached().USB.Product != 0xc35a {
			t.Fatalf("round trip: %+v", got)
		}
	}
}

func TestDeviceConfigProblems(t *testing.T) {
	in := `devices:
  - id: a
    path: /dev/pts/1
    uri: ipp://x
  - id: a
    sane: test
    class: toaster
  - id: b
    usb: {vid: zz, pid: "0001"}
`
	_, err := ParseDeviceConfig("d.yaml", []byte(in))
	want := `d.yaml:2: devices[0]: give exactly one of path, usb, uri, sane (got 2)
d.yaml:5: devices[1]: duplicate id "a"
d.yaml:5: devices[1]: unknown class "toaster"
d.yaml:8: devices[2]: usb vid: "zz" is not four hex digits`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
	_, err = ParseDeviceConfig("d.yaml", []byte("devices:\n  - id: a\n    port: /dev/x\n"))
	if err == nil || !strings.Contains(err.Error(), `d.yaml:3: unknown key "port"`) {
		t.Fatalf("unknown key: %v", err)
	}
}

func FuzzParseDeviceConfig(f *testing.F) {
	f.Add([]byte("devices:\n  - id: a\n    path: /dev/pts/1\n"))
	f.Add([]byte(`{"devices":[{"id":"x","usb":{"vid":"1a86","pid":"7523"}}]}`))
	f.Add([]byte("devices: 3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseDeviceConfig("f", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
	})
}
