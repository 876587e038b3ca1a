// Package smstest reads what the development sender (sms.DevFile) wrote, for tests.
package smstest

import (
	"fmt"
	"os"
	"strings"
)

// LastCode returns the last code the dev file at path holds for the number (E.164).
func LastCode(path, to string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	code := ""
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == to {
			code = f[2]
		}
	}
	if code == "" {
		return "", fmt.Errorf("smstest: no code for %s in %s", to, path)
	}
	return code, nil
}
