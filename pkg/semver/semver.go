// Package semver parses and orders the versions of kiosk apps and of the agent: Semantic
// Versioning 2.0.0 (https://semver.org) without the leading "v", e.g. 1.4.0, 2.0.0-rc.1+build.5.
package semver

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid marks a string that is not a semantic version.
var ErrInvalid = errors.New("semver: not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])")

// Version is a parsed semantic version.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string // pre-release identifiers, none for a release
	Build               string   // build metadata, ignored in comparisons (SemVer §10)
}

// Parse parses s (at most 64 bytes).
func Parse(s string) (Version, error) {
	var v Version
	if s == "" || len(s) > 64 {
		return v, fmt.Errorf("%w: %q", ErrInvalid, s)
	}
	core, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !idents(build, false) {
		return v, fmt.Errorf("%w: %q: bad build metadata", ErrInvalid, s)
	}
	v.Build = build
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre {
		if !idents(pre, true) {
			return v, fmt.Errorf("%w: %q: bad pre-release", ErrInvalid, s)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("%w: %q", ErrInvalid, s)
	}
	nums := []*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, ok := number(p)
		if !ok {
			return v, fmt.Errorf("%w: %q", ErrInvalid, s)
		}
		*nums[i] = n
	}
	return v, nil
}

// Valid reports whether s parses.
func Valid(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// Compare orders a and b (SemVer §11): -1, 0 or +1. Strings that do not parse sort before every
// version, and among themselves by byte.
func Compare(a, b string) int {
	va, ea := Parse(a)
	vb, eb := Parse(b)
	switch {
	case ea != nil && eb != nil:
		return strings.Compare(a, b)
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	return va.Compare(vb)
}

// Compare orders v and w (SemVer §11).
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, w.Patch); c != 0 {
		return c
	}
	// A release sorts after its pre-releases.
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := range min(len(v.Pre), len(w.Pre)) {
		a, b := v.Pre[i], w.Pre[i]
		na, aNum := number(a)
		nb, bNum := number(b)
		switch {
		case aNum && bNum:
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
		case aNum:
			return -1 // numeric identifiers sort before alphanumeric ones
		case bNum:
			return 1
		default:
			if c := strings.Compare(a, b); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(v.Pre), len(w.Pre))
}

// number parses a numeric identifier: digits, no leading zero (SemVer §2).
func number(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// idents checks dot-separated identifiers of [0-9A-Za-z-]; numeric pre-release identifiers must
// not have leading zeros (SemVer §9).
func idents(s string, pre bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-") != "" {
			return false
		}
		if pre && strings.Trim(id, "0123456789") == "" && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}
