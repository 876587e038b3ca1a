// Package idcardsim simulates a GA 467 ID-card reader: it speaks the same frames as the hardware on
// a byte stream (the master side of a pty) or as the device side of a USB fake, holds a card built
// from plain fields, and injects faults: no card, misread, corrupt replies, SAM fault, slowness,
// unplug and replug.
package idcardsim

import (
	"time"
	"unicode/utf16"

	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
)

// Card is a card's contents as plain fields; TextBlock lays them out per GA 467. Fields a card
// type does not have are ignored. This is test data: it has no masking.
type Card struct {
	Type byte // 0 or ' ' resident, 'J', 'I', 'Y'

	Name, EnglishName, Sex, Nation, BirthDate, Address, Number, Authority  string
	ValidFrom, ValidTo, PermitNumber, IssueCount, Nationality, CardVersion string
	Office, RenewalCount, PreviousCard, AppendedAddress                    string

	Photo       []byte // WLT, 1024 bytes (zero-filled if shorter)
	Fingerprint []byte // 1024 bytes; nil for a card without one
}

// TextBlock returns the 256-byte UCS-2 LE text block, space padded, with the offsets of GA 467
// and the permanent residence card specifications.
func (c *Card) TextBlock() []byte {
	b := make([]byte, 256)
	put(b, 0, 256, "")
	switch c.Type {
	case 'I':
		put(b, 0, 120, c.EnglishName)
		put(b, 120, 122, c.Sex)
		put(b, 122, 152, c.Number)
		put(b, 152, 158, c.Nationality)
		put(b, 158, 188, c.Name)
		put(b, 188, 204, c.ValidFrom)
		put(b, 204, 220, c.ValidTo)
		put(b, 220, 236, c.BirthDate)
		put(b, 236, 240, c.CardVersion)
		put(b, 240, 248, c.Office)
	case 'Y':
		put(b, 0, 30, c.Name)
		put(b, 30, 32, c.Sex)
		put(b, 32, 36, c.RenewalCount)
		put(b, 36, 52, c.BirthDate)
		en := utf16.Encode([]rune(c.EnglishName))
		first := min(len(en), 35)
		put(b, 52, 122, string(utf16.Decode(en[:first])))
		put(b, 220, 242, string(utf16.Decode(en[first:])))
		put(b, 122, 158, c.Number)
		put(b, 158, 188, c.Authority)
		put(b, 188, 204, c.ValidFrom)
		put(b, 204, 220, c.ValidTo)
		put(b, 242, 248, c.Nationality)
		put(b, 250, 256, c.PreviousCard)
	default:
		put(b, 0, 30, c.Name)
		put(b, 30, 32, c.Sex)
		put(b, 32, 36, c.Nation)
		put(b, 36, 52, c.BirthDate)
		put(b, 52, 122, c.Address)
		put(b, 122, 158, c.Number)
		put(b, 158, 188, c.Authority)
		put(b, 188, 204, c.ValidFrom)
		put(b, 204, 220, c.ValidTo)
		if c.Type == 'J' {
			put(b, 220, 238, c.PermitNumber)
			put(b, 238, 242, c.IssueCount)
		}
	}
	if c.Type != 0 {
		put(b, 248, 250, string(rune(c.Type)))
	}
	return b
}

// put writes s as UCS-2 LE into b[from:to], padded with spaces and cut at to.
func put(b []byte, from, to int, s string) {
	u := utf16.Encode([]rune(s))
	for i := from; i+1 < to; i += 2 {
		c := uint16(' ')
		if k := (i - from) / 2; k < len(u) {
			c = u[k]
		}
		b[i], b[i+1] = byte(c), byte(c>>8)
	}
}

// UCS2 encodes s as UCS-2 LE (for the appended address reply).
func UCS2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return b
}

// Canary numbers: valid check characters, so a reader accepts them; tests search formatted output
// and logs for them.
const (
	CanaryResident = "44010619900307124X"
	CanaryHKMOTW   = "810000199901010014"
	CanaryForeign  = "USA310085050101"
	Canary2023     = "932156198512250024"
)

// Resident returns a sample resident identity card.
func Resident() *Card {
	return &Card{
		Name: "张三丰", Sex: "1", Nation: "01", BirthDate: "19900307",
		Address: "广东省广州市天河区体育西路100号", Number: CanaryResident,
		Authority: "广州市公安局天河分局", ValidFrom: "20150101", ValidTo: "20350101",
		AppendedAddress: "广东省广州市越秀区北京路1号", Photo: photo(), Fingerprint: fingerprint(),
	}
}

// Senior returns a sample resident identity card whose holder turns 60 ten days after now (the
// simulator's clock): what the hub's senior-services rule (服务找人) is for. Its number is built
// from the birth date with a valid check character; tests search output for it as for the
// canaries (SeniorNumber).
func Senior(now time.Time) *Card {
	birth := now.AddDate(-60, 0, 10).Format("20060102")
	return &Card{
		Name: "李秀英", Sex: "2", Nation: "01", BirthDate: birth,
		Address: "广东省深圳市南山区桃园路2号", Number: SeniorNumber(now),
		Authority: "深圳市公安局南山分局", ValidFrom: "20200101", ValidTo: "20400101",
		Photo: photo(),
	}
}

// SeniorNumber is the ID number of Senior(now).
func SeniorNumber(now time.Time) string {
	n := "440305" + now.AddDate(-60, 0, 10).Format("20060102") + "246"
	return n + string(gb11643.CheckChar([]byte(n)))
}

// HKMOTW returns a sample Hong Kong / Macau / Taiwan residence permit.
func HKMOTW() *Card {
	return &Card{
		Type: 'J', Name: "陈大文", Sex: "1", BirthDate: "19990101",
		Address: "广东省深圳市福田区福华路1号", Number: CanaryHKMOTW, Authority: "深圳市公安局",
		ValidFrom: "20200101", ValidTo: "20250101", PermitNumber: "H12345678", IssueCount: "01",
		Photo: photo(),
	}
}

// Foreigner2017 returns a sample 2017 foreigner's permanent residence card.
func Foreigner2017() *Card {
	return &Card{
		Type: 'I', EnglishName: "SMITH, JOHN ADAM", Sex: "1", Number: CanaryForeign,
		Nationality: "USA", Name: "史密斯", ValidFrom: "20170601", ValidTo: "20270601",
		BirthDate: "19850501", CardVersion: "01", Office: "1500", Photo: photo(),
	}
}

// Foreigner2023 returns a sample 2023 foreigner's permanent residence card with an English name
// long enough to continue into its second field.
func Foreigner2023() *Card {
	return &Card{
		Type: 'Y', Name: "玛丽", Sex: "2", RenewalCount: "00", BirthDate: "19851225",
		EnglishName: "MARTINEZ GARCIA, MARIA ALEJANDRA DE LA CRUZ", Number: Canary2023,
		Authority: "国家移民管理局", ValidFrom: "20231201", ValidTo: "20331201",
		Nationality: "ESP", PreviousCard: "", Photo: photo(),
	}
}

func photo() []byte {
	p := make([]byte, 1024)
	copy(p, "WLTsim")
	for i := 6; i < len(p); i++ {
		p[i] = byte(i * 7)
	}
	return p
}

func fingerprint() []byte {
	f := make([]byte, 1024)
	for i := range f {
		f[i] = byte(i*13 + 1)
	}
	return f
}
