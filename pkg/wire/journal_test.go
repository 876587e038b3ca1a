package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

func sealed(t *testing.T, key *ecdsa.PrivateKey) JournalEntry {
	t.Helper()
	e := JournalEntry{V: Version, Chain: "0123456789abcdef", Index: 1, TS: 1795723800000, Type: "print",
		Session: "5e55-1", Counts: map[string]int64{"pages": 2, "bytes": 1234}, Refs: map[string]string{"document": "form-apply", "sha256": "ab"}}
	e.Seal()
	if key != nil {
		if err := e.SignCheckpoint(key); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// The hash covers every field but itself and the signature, and survives the JSON round trip;
// a change to any field shows.
func TestJournalDigest(t *testing.T) {
	e := sealed(t, nil)
	got, err := DecodeJournalEntry(Encode(e))
	if err != nil || got.VerifyHash() != nil {
		t.Fatalf("round trip: %v, %v", err, got.VerifyHash())
	}
	for name, change := range map[string]func(*JournalEntry){
		"chain": func(e *JournalEntry) { e.Chain = "0123456789abcdee" },
		"index": func(e *JournalEntry) { e.Index = 2 },
		"ts":    func(e *JournalEntry) { e.TS++ },
		"type":  func(e *JournalEntry) { e.Type = "scan" },
		"count": func(e *JournalEntry) { e.Counts["pages"] = 3 },
		"ref":   func(e *JournalEntry) { e.Refs["document"] = "form-other" },
		"moved": func(e *JournalEntry) {
			e.Refs["documen"], e.Refs["tdocument"] = "", "form-apply"
			delete(e.Refs, "document")
		},
		"extra": func(e *JournalEntry) { e.Counts["copies"] = 0 },
	} {
		c := sealed(t, nil)
		change(&c)
		if !errors.Is(c.VerifyHash(), ErrJournalHash) {
			t.Errorf("%s changed, the hash still matches", name)
		}
	}
}

func TestJournalCheckpoint(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e := sealed(t, key)
	if err := e.VerifyCheckpoint(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(e.VerifyCheckpoint(&other.PublicKey), ErrJournalSig) {
		t.Error("a checkpoint verified with another key")
	}
	other2 := sealed(t, nil)
	e.Hash = other2.Hash[:63] + "0"
	if !errors.Is(e.VerifyCheckpoint(&key.PublicKey), ErrJournalSig) {
		t.Error("a checkpoint verified over another hash")
	}
	if err := (&JournalEntry{}).SignCheckpoint(nil); err == nil {
		t.Error("signed without a key")
	}
}

func TestDecodeJournalEntryRefuses(t *testing.T) {
	for _, b := range []string{
		`{"v":1,"chain":"xyz","index":1,"ts":1,"type":"print","hash":"` + sealed(t, nil).Hash + `"}`,
		`{"v":1,"chain":"0123456789abcdef","index":0,"ts":1,"type":"print","hash":"` + sealed(t, nil).Hash + `"}`,
		`{"v":1,"chain":"0123456789abcdef","index":2,"ts":1,"type":"print","hash":"` + sealed(t, nil).Hash + `"}`,
		`{"v":1,"chain":"0123456789abcdef","index":1,"ts":1,"type":"Print!","hash":"` + sealed(t, nil).Hash + `"}`,
		`{"v":1,"chain":"0123456789abcdef","index":1,"ts":1,"type":"print","hash":"` + sealed(t, nil).Hash + `","name":"张三"}`,
		`{"v":1,"chain":"0123456789abcdef","index":1,"ts":1,"type":"print","counts":{"pages":-1},"hash":"` + sealed(t, nil).Hash + `"}`,
		`{"v":2,"chain":"0123456789abcdef","index":1,"ts":1,"type":"print","hash":"` + sealed(t, nil).Hash + `"}`,
	} {
		if _, err := DecodeJournalEntry([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}
