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
