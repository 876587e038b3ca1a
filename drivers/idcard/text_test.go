package idcard_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// at writes s as UCS-2 LE at byte offset off of b: the golden blocks below are laid out by hand
// from the reference offsets, independently of the simulator's encoder.
func at(b []byte, off int, s string) {
	for i, c := range utf16.Encode([]rune(s)) {
		b[off+2*i], b[off+2*i+1] = byte(c), byte(c>>8)
	}
}

func blank() []byte {
	b := make([]byte, 256)
	for i := 0; i < 256; i += 2 {
		b[i] = ' '
	}
	return b
}

type golden struct {
	name   string
	card   *idcardsim.Card
	block  func() []byte
	typ    idcard.CardType
	fields map[idcard.Field]string
}

func goldens() []golden {
	return []golden{
		{"resident", idcardsim.Resident(), func() []byte {
			b := blank()
			at(b, 0, "张三丰")
			at(b, 30, "1")
			at(b, 32, "01")
			at(b, 36, "19900307")
			at(b, 52, "广东省广州市天河区体育西路100号")
			at(b, 122, idcardsim.CanaryResident)
			at(b, 158, "广州市公安局天河分局")
			at(b, 188, "20150101")
			at(b, 204, "20350101")
			return b
		}, idcard.Resident, map[idcard.Field]string{
			idcard.FieldName: "张三丰", idcard.FieldSex: "1", idcard.FieldNation: "01",
			idcard.FieldBirthDate: "19900307", idcard.FieldAddress: "广东省广州市天河区体育西路100号",
			idcard.FieldNumber: idcardsim.CanaryResident, idcard.FieldAuthority: "广州市公安局天河分局",
			idcard.FieldValidFrom: "20150101", idcard.FieldValidTo: "20350101", idcard.FieldEnglishName: "",
		}},
		{"hkmotw", idcardsim.HKMOTW(), func() []byte {
			b := blank()
			at(b, 0, "陈大文")
			at(b, 30, "1")
			at(b, 36, "19990101")
			at(b, 52, "广东省深圳市福田区福华路1号")
			at(b, 122, idcardsim.CanaryHKMOTW)
			at(b, 158, "深圳市公安局")
			at(b, 188, "20200101")
			at(b, 204, "20250101")
			at(b, 220, "H12345678")
			at(b, 238, "01")
			at(b, 248, "J")
			return b
		}, idcard.HKMOTW, map[idcard.Field]string{
			idcard.FieldName: "陈大文", idcard.FieldNumber: idcardsim.CanaryHKMOTW,
			idcard.FieldPermitNumber: "H12345678", idcard.FieldIssueCount: "01", idcard.FieldNation: "",
			idcard.FieldValidTo: "20250101",
		}},
		{"foreigner2017", idcardsim.Foreigner2017(), func() []byte {
			b := blank()
			at(b, 0, "SMITH, JOHN ADAM")
			at(b, 120, "1")
			at(b, 122, idcardsim.CanaryForeign)
			at(b, 152, "USA")
			at(b, 158, "史密斯")
			at(b, 188, "20170601")
			at(b, 204, "20270601")
			at(b, 220, "19850501")
			at(b, 236, "01")
			at(b, 240, "1500")
			at(b, 248, "I")
			return b
		}, idcard.Foreigner2017, map[idcard.Field]string{
			idcard.FieldEnglishName: "SMITH, JOHN ADAM", idcard.FieldSex: "1", idcard.FieldNumber: idcardsim.CanaryForeign,
			idcard.FieldNationality: "USA", idcard.FieldName: "史密斯", idcard.FieldValidFrom: "20170601",
			idcard.FieldValidTo: "20270601", idcard.FieldBirthDate: "19850501", idcard.FieldCardVersion: "01",
			idcard.FieldOffice: "1500", idcard.FieldAddress: "",
		}},
		{"foreigner2023", idcardsim.Foreigner2023(), func() []byte {
			b := blank()
			at(b, 0, "玛丽")
			at(b, 30, "2")
			at(b, 32, "00")
			at(b, 36, "19851225")
			// 43 characters: 35 fit at 52-121, the other 8 continue at 220.
			at(b, 52, "MARTINEZ GARCIA, MARIA ALEJANDRA DE")
			at(b, 220, " LA CRUZ")
			at(b, 122, idcardsim.Canary2023)
			at(b, 158, "国家移民管理局")
			at(b, 188, "20231201")
			at(b, 204, "20331201")
			at(b, 242, "ESP")
			at(b, 248, "Y")
			return b
		}, idcard.Foreigner2023, map[idcard.Field]string{
			idcard.FieldName: "玛丽", idcard.FieldSex: "2", idcard.FieldRenewalCount: "00",
			idcard.FieldBirthDate: "19851225", idcard.FieldEnglishName: "MARTINEZ GARCIA, MARIA ALEJANDRA DE LA CRUZ",
			idcard.FieldNumber: idcardsim.Canary2023, idcard.FieldNationality: "ESP", idcard.FieldPreviousCard: "",
		}},
	}
}

// The text blocks of all four card types, byte-exact against hand-laid blocks, decoded field by
// field; and the complete read reply frames against checked-in golden files.
func TestGoldenCards(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			want := g.block()
			if got := g.card.TextBlock(); !bytes.Equal(got, want) {
				t.Fatalf("simulator text block differs from the hand-laid one:\n got % X\nwant % X", got, want)
			}
			id, err := idcard.DecodeText(want)
			if err != nil {
				t.Fatal(err)
			}
			if id.Type() != g.typ {
				t.Fatalf("type %v, want %v", id.Type(), g.typ)
			}
			for f, v := range g.fields {
				if got := id.Field(f); got != v {
					t.Errorf("%s = %q, want %q", f, got, v)
				}
			}

			frame := idcardsim.New(g.card).Reply([]byte{0x30, 0x01})
			path := filepath.Join("testdata", "golden", g.name+".hex")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(hexLines(frame)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			golden := unhex(t, strings.Join(strings.Fields(string(raw)), ""))
			if !bytes.Equal(frame, golden) {
				t.Fatalf("read reply differs from %s", path)
			}
			if len(golden) != 1295 {
				t.Fatalf("read reply is %d bytes, GA 467 says 1295", len(golden))
			}
			body, err := idcard.DecodeFrame(golden)
			if err != nil {
				t.Fatal(err)
			}
			rep, _ := idcard.ParseReply(body)
			id2, err := idcard.ParseRead(rep.Data, false)
			if err != nil {
				t.Fatal(err)
			}
			if id2.Number() != g.fields[idcard.FieldNumber] || len(id2.Photo()) != 1024 || !bytes.Equal(id2.Photo(), g.card.Photo) {
				t.Fatalf("read reply decoded to number %q, %d photo bytes", id2.Number(), len(id2.Photo()))
			}
		})
	}
}

func hexLines(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 32 {
		sb.WriteString(strings.ToUpper(hexString(b[i:min(i+32, len(b))])))
		sb.WriteByte('\n')
	}
	return sb.String()
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func TestCheckChar(t *testing.T) {
	for _, n := range []string{"11010519491231002X", idcardsim.CanaryResident, idcardsim.CanaryHKMOTW, idcardsim.Canary2023, "440524188001010014"} {
		if got := idcard.CheckChar(n[:17]); got != n[17] {
			t.Errorf("CheckChar(%s) = %c, want %c", n[:17], got, n[17])
		}
	}
	if idcard.CheckChar("1234") != 0 || idcard.CheckChar("1101051949123100A") != 0 {
		t.Fatal("non-digits accepted")
	}
}

func TestDecodeTextRejects(t *testing.T) {
	mutate := func(f func(b []byte)) []byte {
		b := idcardsim.Resident().TextBlock()
		f(b)
		return b
	}
	for _, tc := range []struct {
		name  string
		block []byte
		want  error
		msg   string
	}{
		{"short", make([]byte, 255), idcard.ErrTextBlock, "255 bytes, want 256"},
		{"bad check character", mutate(func(b []byte) { at(b, 156, "1") }), idcard.ErrMisread, "number check character does not match"},
		{"digit misread", mutate(func(b []byte) { at(b, 124, "9") }), idcard.ErrMisread, "check character"},
		{"letter in number", mutate(func(b []byte) { at(b, 130, "A") }), idcard.ErrMisread, "17 digits"},
		{"birth date", mutate(func(b []byte) { at(b, 36, "1990030X") }), idcard.ErrMisread, "birth date is not YYYYMMDD"},
		{"birth date differs from number", mutate(func(b []byte) { at(b, 36, "19900308") }), idcard.ErrMisread, "does not carry the birth date"},
		{"2017 number", func() []byte {
			b := idcardsim.Foreigner2017().TextBlock()
			at(b, 122, "U")
			at(b, 124, "1")
			return b
		}(), idcard.ErrMisread, "three letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idcard.DecodeText(tc.block)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
			var me *idcard.MisreadError
			if tc.want == idcard.ErrMisread && !errors.As(err, &me) {
				t.Fatalf("%T is not a *MisreadError", err)
			}
			if strings.Contains(err.Error(), "44010619") {
				t.Fatal("error carries the number")
			}
		})
	}
}

func TestParseReadRejects(t *testing.T) {
	good := func() []byte {
		body, _ := idcard.DecodeFrame(idcardsim.New(idcardsim.Resident()).Reply([]byte{0x30, 0x01}))
		return body[3:]
	}
	for _, tc := range []struct {
		name string
		data []byte
		fp   bool
		want error
		msg  string
	}{
		{"no lengths", []byte{1, 0}, false, idcard.ErrTruncated, "no length fields"},
		{"text length", append([]byte{0, 0xFF}, good()[2:]...), false, idcard.ErrTextBlock, "text length field 255"},
		{"truncated photo", good()[:1000], false, idcard.ErrTruncated, "carries 996 bytes after its length fields, they announce 1280"},
		{"extra bytes", append(good(), 1, 2), false, idcard.ErrTruncated, "carries 1282"},
		{"fingerprint length missing", good(), true, idcard.ErrTruncated, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := idcard.ParseRead(tc.data, tc.fp)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}
