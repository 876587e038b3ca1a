package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Every decoder of bytes from outside must reject or accept without panicking, and what it
// accepts must re-encode to something it accepts again.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"heartbeat","class":"t","ts":5,"body":{}}]}`,
		`{"v":1,"epoch":"e1","nextSeq":1,"stateVersion":0,"agentVersion":"x"}`,
		`{"v":1,"epoch":"e1","upTo":3}`,
		`{"v":1,"id":"c","name":"ping","createdAt":1,"expiresAt":2,"expiresIn":1}`,
		`{"v":1,"version":1,"doc":{}}`,
		`{"v":1,"online":false}`,
		`{"id":"c","state":"succeeded","output":{}}`,
		`{"version":1,"doc":{}}`,
		`{"devices":[{"id":"receipt0","class":"receipt-printer","model":"KF-80","connected":true,"status":"fault","reasons":["paper-out"],"consumables":[{"name":"paper","level":"empty"}],"since":1795723800000}]}`,
		`{"devices":[{"id":"a","class":"b","status":"warning"}]}`, `{"scanner":"offline"}`,
		`{"uptimeS":8123,"cpuPercent":12.5,"memUsedBytes":1,"memTotalBytes":4,"diskFreeBytes":2,"diskTotalBytes":8,"agentVersion":"1","outboxDepth":0,"rssBytes":3}`,
		`{"iss":"k-1","sub":"k-1","aud":["a","b"],"iat":1.5,"exp":2,"jti":"x","id_card":{"number":"11010519491231002X","name":"张三"}}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","use":"enc","alg":"ECDH-ES","kid":"e1"}]}`,
		`{"v":1,"chain":"0123456789abcdef","index":2,"prev":"` + strings.Repeat("a", 64) + `","ts":1,"type":"print","session":"s-1","counts":{"pages":2},"refs":{"document":"form-1"},"hash":"` + strings.Repeat("b", 64) + `","sig":"AA=="}`,
		`{"v":1,"tail":"c-1","leftMs":5000,"dropped":2,"lines":[{"ts":1,"level":"INFO","text":"hello k=v"}]}`,
		`{"v":1,"tail":"c-1","leftMs":0,"end":true,"lines":[]}`,
		`{"v":2}`, `[]`, `{"v":1e400}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := DecodeBatch(b); err == nil {
			if _, err := DecodeBatch(Encode(m)); err != nil {
				t.Fatalf("re-encoded batch refused: %v", err)
			}
		}
		if m, err := DecodeHello(b); err == nil {
			if _, err := DecodeHello(Encode(m)); err != nil {
				t.Fatalf("re-encoded hello refused: %v", err)
			}
		}
		if m, err := DecodeLogBatch(b); err == nil {
			if _, err := DecodeLogBatch(Encode(m)); err != nil {
				t.Fatalf("re-encoded log batch refused: %v", err)
			}
		}
		_, _ = DecodeAck(b)
		_, _ = DecodeCommand(b)
		_, _ = DecodeDesired(b)
		_, _ = DecodePresence(b)
		_, _ = DecodeCommandResult(b)
		_, _ = DecodeReported(b)
		if m, err := DecodePeripherals(b); err == nil {
			if _, err := DecodePeripherals(Encode(m)); err != nil {
				t.Fatalf("re-encoded peripherals refused: %v", err)
			}
		}
		if m, err := DecodeHeartbeat(b); err == nil {
			if _, err := DecodeHeartbeat(Encode(m)); err != nil {
				t.Fatalf("re-encoded heartbeat refused: %v", err)
			}
		}
		if k, err := EncryptionKey(b); err == nil && (k.Use != "enc" || !k.IsPublic()) {
			t.Fatalf("EncryptionKey chose %+v", k)
		}
		if e, err := DecodeJournalEntry(b); err == nil {
			again, err := DecodeJournalEntry(Encode(e))
			if err != nil || again.Digest() != e.Digest() {
				t.Fatalf("re-encoded journal entry refused or changed: %v", err)
			}
		}
		var c KioskClaims
		if json.Unmarshal(b, &c) == nil {
			var again KioskClaims
			if err := json.Unmarshal(Encode(c), &again); err != nil || !bytes.Equal(Encode(again), Encode(c)) {
				t.Fatalf("kiosk claims do not round-trip: %s -> %s (%v)", Encode(c), Encode(again), err)
			}
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"kf/v1/dev/k-1/up", "#", "$SYS/x", "kf/v1/dev/+/ack", "kf/v1/dev/a/b/c"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, topic string, write bool) {
		id, ch, err := ParseTopic(topic)
		if err == nil && Topic(id, ch) != topic {
			t.Fatalf("ParseTopic(%q) = %q %q does not round-trip", topic, id, ch)
		}
		if Allowed(id, topic, write) && err != nil {
			t.Fatalf("Allowed a topic that does not parse: %q", topic)
		}
	})
}
