// Package gb11643 knows the citizen identity number of GB 11643-1999: 17 digits (a GB/T 2260
// region code, a birth date YYYYMMDD and a sequence number) and a check character computed with
// ISO 7064 MOD 11-2. It validates numbers, reads their birth date, and finds anything shaped like
// one inside free text, so that a number never reaches a place it must not (logs, analytics).
// Its errors never contain the number.
package gb11643

import (
	"errors"
	"fmt"
	"time"
)

var (
	ErrLength = errors.New("gb11643: an id number has 18 characters")
	ErrDigits = errors.New("gb11643: the first 17 characters must be digits")
	ErrCheck  = errors.New("gb11643: check character does not match")
	ErrBirth  = errors.New("gb11643: characters 7-14 are not a valid birth date")
)

// weights are 2^(17-i) mod 11 for positions i = 0..16 (ISO 7064 MOD 11-2).
var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckChar returns the check character of the first 17 digits of n (which must be digits).
func CheckChar(n []byte) byte {
	sum := 0
	for i := range 17 {
		sum += int(n[i]-'0') * weights[i]
	}
	return "10X98765432"[sum%11]
}

// Check validates n: 17 digits and the matching check character ('x' is read as 'X').
func Check(n []byte) error {
	if len(n) != 18 {
		return fmt.Errorf("%w, not %d", ErrLength, len(n))
	}
	for _, c := range n[:17] {
		if c < '0' || c > '9' {
			return ErrDigits
		}
	}
	got := n[17]
	if got == 'x' {
		got = 'X'
	}
	if got != CheckChar(n) {
		return ErrCheck
	}
	return nil
}

// BirthDate returns the birth date a valid number carries (UTC midnight).
func BirthDate(n []byte) (time.Time, error) {
	if err := Check(n); err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("20060102", string(n[6:14]))
	if err != nil {
		return time.Time{}, ErrBirth
	}
	return t, nil
}

// Contains reports whether s holds anything shaped like an ID number: 17 digits and a digit or
// X, whatever the check character, not part of a longer run of digits. Single spaces or hyphens
// between the characters ("4403 0519 9001 0112 34") do not hide it, and neither do full-width
// digits and X.
func Contains(s string) bool {
	rs := []rune(s)
	run := 0 // characters of the current run of digits (and a final X)
	for i := 0; i <= len(rs); i++ {
		if i < len(rs) {
			r := rs[i]
			if digit(r) >= 0 && run < 18 {
				run++
				continue
			}
			if isX(r) && run == 17 {
				run++
				continue
			}
			if (r == ' ' || r == '-') && run > 0 && run < 18 && i+1 < len(rs) && idChar(rs[i+1]) && idChar(rs[i-1]) {
				continue // a separator inside the number
			}
			if run > 0 && idChar(r) {
				// The run goes on past 18 characters: a longer number, not an ID number by
				// itself. Skip to its end.
				for i < len(rs) && (idChar(rs[i]) || rs[i] == ' ' || rs[i] == '-') {
					i++
				}
				run = 0
				continue
			}
		}
		if run == 18 {
			return true
		}
		run = 0
	}
	return false
}

func idChar(r rune) bool { return digit(r) >= 0 || isX(r) }

func isX(r rune) bool { return r == 'X' || r == 'x' || r == 'Ｘ' || r == 'ｘ' }

// digit returns the value of an ASCII or full-width decimal digit, -1 for anything else.
func digit(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r >= '０' && r <= '９':
		return int(r - '０')
	}
	return -1
}
