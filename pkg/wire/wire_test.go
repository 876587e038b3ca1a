package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		dev, topic string
		write, ok  bool
	}{
		{"k-a", Topic("k-a", ChUp), true, true},
		{"k-a", Topic("k-a", ChHello), true, true},
		{"k-a", Topic("k-a", ChPresence), true, true},
		{"k-a", Topic("k-a", ChAck), false, true},
		{"k-a", Topic("k-a", ChCmd), false, true},
		{"k-a", Topic("k-a", ChDesired), false, true},
		{"k-a", Topic("k-a", ChLog), true, true},
		{"k-a", Topic("k-a", ChLog), false, false}, // nobody reads a kiosk's log but the hub
		{"k-a", Topic("k-b", ChLog), true, false},  // nor writes another's
		{"k-a", Topic("k-a", ChAck), true, false},  // a device cannot forge its own acks
		{"k-a", Topic("k-a", ChUp), false, false},
		{"k-a", Topic("k-b", ChUp), true, false},
		{"k-a", Topic("k-b", ChAck), false, false},
		{"k-a", "#", false, false},
		{"k-a", "+/#", false, false},
		{"k-a", "kf/v1/dev/+/ack", false, false},
		{"k-a", "kf/v1/dev/k-a/#", false, false},
		{"k-a", "$share/g/kf/v1/dev/k-a/ack", false, false},
		{"k-a", "$SYS/#", false, false},
		{"k-a", "kf/v1/dev/k-a/up/extra", true, false},
		{"K-A", Topic("K-A", ChUp), true, false},
		{"", "kf/v1/dev//up", true, false},
	} {
		if got := Allowed(tc.dev, tc.topic, tc.write); got != tc.ok {
			t.Errorf("Allowed(%q, %q, write=%v) = %v, want %v", tc.dev, tc.topic, tc.write, got, tc.ok)
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	good := `{"v":1,"epoch":"e1","records":[{"seq":1,"kind":"heartbeat","class":"t","ts":5,"body":{}},{"seq":3,"kind":"x","class":"b","ts":6,"body":{"a":1}}]}`
	b, err := DecodeBatch([]byte(good))
	if err != nil || len(b.Records) != 2 || b.Records[1].Seq != 3 {
		t.Fatalf("DecodeBatch(good) = %+v, %v", b, err)
	}
	for name, tc := range map[string]struct {
		in   string
		want error
		msg  string
	}{
		"not json":      {`nope`, ErrMalformed, "invalid JSON"},
		"bad utf-8":     {"{\"v\":1,\"epoch\":\"e\",\"records\":[{\"seq\":1,\"kind\":\"k\",\"class\":\"t\",\"ts\":1,\"body\":{\"n\":\"\xff\"}}]}", ErrMalformed, "invalid UTF-8 at byte 82"},
		"dup key":       {`{"v":1,"epoch":"e","epoch":"f","records":[]}`, ErrMalformed, `duplicate key at byte 19: "epoch"`},
		"dup in body":   {`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":1,"body":{"amount":1,"Amount":100}}]}`, ErrMalformed, "differ only in case"},
		"dup seq":       {`{"v":1,"epoch":"e","records":[{"seq":1,"seq":2,"kind":"k","class":"t","ts":1,"body":{}}]}`, ErrMalformed, "duplicate key"},
		"no version":    {`{"epoch":"e"}`, ErrMalformed, `missing "v"`},
		"version 2":     {`{"v":2}`, ErrUnknownVersion, "2"},
		"unknown field": {`{"v":1,"epoch":"e","records":[],"x":1}`, ErrMalformed, "unknown field"},
		"empty":         {`{"v":1,"epoch":"e","records":[]}`, ErrMalformed, "0 records"},
		"bad epoch":     {`{"v":1,"epoch":"E/1","records":[]}`, ErrMalformed, "epoch"},
		"seq zero":      {`{"v":1,"epoch":"e","records":[{"seq":0,"kind":"k","class":"t","ts":1,"body":{}}]}`, ErrMalformed, "seq 0"},
		"seq order":     {`{"v":1,"epoch":"e","records":[{"seq":2,"kind":"k","class":"t","ts":1,"body":{}},{"seq":2,"kind":"k","class":"t","ts":1,"body":{}}]}`, ErrMalformed, "not above"},
		"bad class":     {`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"z","ts":1,"body":{}}]}`, ErrMalformed, "class"},
		"bad kind":      {`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"K!","class":"t","ts":1,"body":{}}]}`, ErrMalformed, "kind"},
		"no body":       {`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":1}]}`, ErrMalformed, "body"},
		"trailing":      {`{"v":1,"epoch":"e","records":[{"seq":1,"kind":"k","class":"t","ts":1,"body":{}}]} {}`, ErrMalformed, "trailing data"},
		"huge":          {`{"v":1,"x":"` + strings.Repeat("a", MaxPayloadBytes) + `"}`, ErrTooLarge, "bytes"},
	} {
		_, err := DecodeBatch([]byte(tc.in))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", name, err, tc.want, tc.msg)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	h := Hello{V: Version, Epoch: "ab12", NextSeq: 7, StateVersion: 2, AgentVersion: "1.0"}
	if got, err := DecodeHello(Encode(h)); err != nil || got != h {
		t.Fatalf("hello round trip: %+v %v", got, err)
	}
	a := AckMsg{V: Version, Epoch: "ab12", UpTo: 99}
	if got, err := DecodeAck(Encode(a)); err != nil || got != a {
		t.Fatalf("ack round trip: %+v %v", got, err)
	}
	c := Command{V: Version, ID: "c1", Name: "ping", Args: []byte(`{"x":1}`), CreatedAt: 1, ExpiresAt: 2, ExpiresIn: 1}
	if got, err := DecodeCommand(Encode(c)); err != nil || got.ID != "c1" || string(got.Args) != `{"x":1}` {
		t.Fatalf("command round trip: %+v %v", got, err)
	}
	if _, err := DecodeCommand(Encode(Command{V: Version, ID: "c1", Name: "ping"})); err == nil {
		t.Fatal("command without expiry accepted")
	}
	d := Desired{V: Version, Version: 3, Doc: []byte(`{"a":1}`)}
	if got, err := DecodeDesired(Encode(d)); err != nil || got.Version != 3 {
		t.Fatalf("desired round trip: %+v %v", got, err)
	}
	if _, err := DecodeDesired([]byte(`{"v":1,"version":1,"doc":[1]}`)); err == nil {
		t.Fatal("desired with a non-object doc accepted")
	}
	if _, err := DecodeCommandResult([]byte(`{"id":"c","state":"queued"}`)); err == nil {
		t.Fatal("agent-reported queued state accepted")
	}
	if r, err := DecodeReported([]byte(`{"version":2,"doc":{"x":1}}`)); err != nil || r.Version != 2 {
		t.Fatalf("reported: %+v %v", r, err)
	}
}

func TestParseTopic(t *testing.T) {
	id, ch, err := ParseTopic("kf/v1/dev/k-1/up")
	if err != nil || id != "k-1" || ch != ChUp {
		t.Fatalf("ParseTopic = %q %q %v", id, ch, err)
	}
	for _, bad := range []string{"", "kf/v1/dev/", "kf/v1/dev/k-1", "kf/v1/dev/k-1/nope", "x/k-1/up", "kf/v1/dev/+/up", "kf/v1/dev/k-1/up/x"} {
		if _, _, err := ParseTopic(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ParseTopic(%q) err = %v", bad, err)
		}
	}
}

func TestDecodeLogBatch(t *testing.T) {
	good := `{"v":1,"tail":"c-1","leftMs":5000,"dropped":2,"lines":[{"ts":1,"level":"WARN","text":"paper low"}]}`
	if b, err := DecodeLogBatch([]byte(good)); err != nil || b.Tail != "c-1" || b.LeftMs != 5000 || len(b.Lines) != 1 || b.Lines[0].Level != "WARN" {
		t.Fatalf("DecodeLogBatch(good) = %+v, %v", b, err)
	}
	line := func(text string) string {
		return `{"v":1,"tail":"c","leftMs":1,"lines":[{"ts":1,"level":"INFO","text":"` + text + `"}]}`
	}
	for name, tc := range map[string]struct {
		in   string
		want error
		msg  string
	}{
		"no tail":     {`{"v":1,"tail":"","leftMs":1,"lines":[]}`, ErrMalformed, "tail must be"},
		"negative":    {`{"v":1,"tail":"c","leftMs":-1,"lines":[]}`, ErrMalformed, "negative"},
		"level":       {`{"v":1,"tail":"c","leftMs":1,"lines":[{"ts":1,"level":"TRACE","text":"x"}]}`, ErrMalformed, `level "TRACE"`},
		"long line":   {line(strings.Repeat("a", MaxLogLineBytes+1)), ErrMalformed, "bytes >"},
		"many lines":  {`{"v":1,"tail":"c","leftMs":1,"lines":[` + strings.TrimSuffix(strings.Repeat(`{"ts":1,"level":"INFO","text":""},`, MaxLogLines+1), ",") + `]}`, ErrMalformed, "lines >"},
		"too large":   {`{"v":1,"tail":"c","leftMs":1,"lines":[]}` + strings.Repeat(" ", MaxLogBatchBytes), ErrMalformed, "log batch of"},
		"version":     {`{"v":2,"tail":"c"}`, ErrUnknownVersion, "2"},
		"dup key":     {`{"v":1,"tail":"c","tail":"d","leftMs":1,"lines":[]}`, ErrMalformed, "duplicate key"},
		"unknown key": {`{"v":1,"tail":"c","leftMs":1,"lines":[],"x":1}`, ErrMalformed, "unknown field"},
	} {
		_, err := DecodeLogBatch([]byte(tc.in))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %v containing %q", name, err, tc.want, tc.msg)
		}
	}
}
