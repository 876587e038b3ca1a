package fleetctl

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkDevicesList5000 measures `fleetctl devices list` over a fleet of 5000 kiosks (a
// province's worth): HTTP, JSON decoding, health and fault summaries, and the table.
func BenchmarkDevicesList5000(b *testing.B) {
	for _, output := range []string{"table", "json"} {
		b.Run(output, func(b *testing.B) {
			h := newFakeHub(b)
			base := h.devices
			h.devices = nil
			for i := range 5000 {
				d := base[i%len(base)]
				d.ID = fmt.Sprintf("k-%016x", i)
				h.devices = append(h.devices, d)
			}
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			env := Env{Stdout: io.Discard, HTTP: &http.Client{Transport: tr},
				Getenv: func(k string) string { return map[string]string{"KF_HUB": h.srv.URL, "KF_TOKEN": testToken}[k] }}
			b.ReportAllocs()
			for b.Loop() {
				if code := Run(context.Background(), []string{"devices", "list", "-o", output}, env); code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
		})
	}
}
