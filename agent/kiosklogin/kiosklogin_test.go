package kiosklogin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestAssertionVerifiesAndCardStaysHidden(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const number = "44010619900307124X"
	card := wire.IDCard{Number: wire.Secret(number), Name: "张三丰"}
	a, err := Assertion(key, "k-1", "http://hub", card, time.Unix(1764100000, 0), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", a)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if len(sig) != 64 || !ecdsa.Verify(&key.PublicKey, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature does not verify")
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	for _, want := range []string{`"iss":"k-1"`, `"sub":"k-1"`, `"aud":"http://hub"`, `"exp":1764100060`, `"id_card":{"number":"` + number + `","name":"张三丰"}`} {
		if !strings.Contains(string(payload), want) {
			t.Errorf("payload %s lacks %s", payload, want)
		}
	}
	if s := fmt.Sprintf("%v %+v %s", card, card, card); strings.Contains(s, number) || strings.Contains(s, "张三丰") {
		t.Errorf("card printed: %s", s)
	}
	card.Wipe()
	if card.Number != nil || card.Name != "" {
		t.Fatal("card not wiped")
	}
}
