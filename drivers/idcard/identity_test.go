package idcard_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

// secrets are the clear-text values that must never appear in output: the canary number, its
// distinctive middle, and the name.
func secrets(c *idcardsim.Card) []string {
	s := []string{c.Number, c.Number[4:14]}
	if c.Name != "" {
		s = append(s, c.Name)
	}
	if c.Address != "" {
		s = append(s, c.Address)
	}
	return s
}

func assertNoSecrets(t *testing.T, where, out string, c *idcardsim.Card) {
	t.Helper()
	for _, s := range secrets(c) {
		if strings.Contains(out, s) {
			t.Errorf("%s leaks %q: %s", where, s, out)
		}
	}
}

func TestIdentityNeverPrintsInClear(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			id, err := idcard.DecodeText(g.card.TextBlock())
			if err != nil {
				t.Fatal(err)
			}
			val := *id
			type wrapper struct{ ID *idcard.Identity }
			outs := map[string]string{
				"String":   id.String(),
				"GoString": id.GoString(),
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
				outs[verb+" ptr"] = fmt.Sprintf(verb, id)
				outs[verb+" value"] = fmt.Sprintf(verb, val)
				outs[verb+" nested"] = fmt.Sprintf(verb, wrapper{id})
			}
			outs["Println"] = fmt.Sprintln(id, val, []*idcard.Identity{id})
			j, err := json.Marshal(map[string]any{"ptr": id, "value": val})
			if err != nil {
				t.Fatal(err)
			}
			outs["json"] = string(j)
			var buf bytes.Buffer
			for _, h := range []slog.Handler{
				slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
				slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
			} {
				l := slog.New(h)
				l.Debug("read", "identity", id, "value", val)
				l.Info("read", slog.Any("identity", id), slog.Group("g", "id", val))
			}
			outs["slog"] = buf.String()
			for where, out := range outs {
				assertNoSecrets(t, where, out, g.card)
			}
			if !strings.Contains(outs["json"], idcard.MaskNumber(g.card.Number)) || !strings.Contains(outs["slog"], idcard.MaskNumber(g.card.Number)) {
				t.Fatalf("masked number missing: %s / %s", outs["json"], outs["slog"])
			}
		})
	}
}

func TestMask(t *testing.T) {
	if got := idcard.MaskNumber("44010619900307124X"); got != "4401**********124X" {
		t.Fatal(got)
	}
	if got := idcard.MaskNumber("USA310085050101"); got != "USA3*******0101" {
		t.Fatal(got)
	}
	if got := idcard.MaskNumber("1234"); got != "****" {
		t.Fatal(got)
	}
	if got := idcard.MaskName("张三丰"); got != "张**" {
		t.Fatal(got)
	}
}

func TestWipe(t *testing.T) {
	c := idcardsim.Resident()
	body, _ := idcard.DecodeFrame(idcardsim.New(c).Reply([]byte{0x30, 0x10}))
	id, err := idcard.ParseRead(body[3:], true)
	if err != nil {
		t.Fatal(err)
	}
	copyOf := *id
	photo, fp := id.Photo(), id.Fingerprint()
	if len(photo) != 1024 || len(fp) != 1024 || id.Name() != c.Name {
		t.Fatalf("before wipe: photo %d fingerprint %d name %q", len(photo), len(fp), id.Name())
	}
	id.Wipe()
	for _, f := range []idcard.Field{idcard.FieldName, idcard.FieldNumber, idcard.FieldAddress} {
		if id.Field(f) != "" || copyOf.Field(f) != "" {
			t.Fatalf("%s survives Wipe", f)
		}
	}
	if !bytes.Equal(photo, make([]byte, 1024)) || !bytes.Equal(fp, make([]byte, 1024)) {
		t.Fatal("photo or fingerprint survives Wipe")
	}
}

type grayWLT struct{ got []byte }

func (g *grayWLT) DecodeWLT(b []byte) (image.Image, error) {
	g.got = b
	return image.NewGray(image.Rect(0, 0, 102, 126)), nil
}

func TestPhotoDecoderIsOptional(t *testing.T) {
	c := idcardsim.Resident()
	body, _ := idcard.DecodeFrame(idcardsim.New(c).Reply([]byte{0x30, 0x01}))
	id, err := idcard.ParseRead(body[3:], false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.Image(nil); !errors.Is(err, idcard.ErrNoPhotoDecoder) {
		t.Fatalf("Image(nil) = %v", err)
	}
	d := &grayWLT{}
	img, err := id.Image(d)
	if err != nil || img.Bounds().Dx() != 102 || !bytes.Equal(d.got, c.Photo) {
		t.Fatalf("Image = %v, %v", img, err)
	}
}
