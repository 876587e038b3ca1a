package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProfilesValidate(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"profiles", "validate", "../../../firmware-profiles"}, &out, &errb); err != nil {
		t.Fatalf("shipped profiles: %v", err)
	}
	if !strings.Contains(out.String(), "profiles valid") {
		t.Fatalf("output %q", out.String())
	}
	err := run([]string{"profiles", "validate", "../../../drivers/profile/testdata/invalid/bad-values.yaml"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "bad-values.yaml:5: driver") || !strings.Contains(err.Error(), "bad-values.yaml:13: transport.baud") {
		t.Fatalf("invalid profile: %v", err)
	}
}

func TestEnrollFlagsReportedTogether(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"enroll", "--data", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--hub is required") || !strings.Contains(err.Error(), "--token is required") {
		t.Fatalf("err = %v", err)
	}
	if err := run([]string{"frobnicate"}, &out, &errb); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestLocalAPIOnLoopbackOnly(t *testing.T) {
	var out, errb bytes.Buffer
	for _, addr := range []string{"0.0.0.0:8090", "192.0.2.1:8090", ":8090", "kiosk.example:8090", "127.0.0.1"} {
		err := run([]string{"run", "--data", t.TempDir(), "--devices", "devices.yaml", "--local-api", addr}, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "--local-api") {
			t.Errorf("--local-api %s: %v", addr, err)
		}
	}
	err := run([]string{"run", "--data", t.TempDir(), "--local-api", "127.0.0.1:8090"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "needs --devices") {
		t.Errorf("--local-api without --devices: %v", err)
	}
	err = run([]string{"run", "--data", t.TempDir(), "--local-api", "[::1]:0", "--devices", "devices.yaml"}, &out, &errb)
	if err == nil || strings.Contains(err.Error(), "--local-api") { // refused later: not enrolled
		t.Errorf("--local-api [::1]:0: %v", err)
	}
}
