package localapitest

import "testing"

// Conform is what the conformance of every message in the API's tests rests on: it must refuse
// what the API must never send.
func TestConform(t *testing.T) {
	good := []string{
		`{"header":{"name":"Common.Status","requestId":1,"type":"acknowledge","version":"1.0"},"payload":{}}`,
		`{"header":{"name":"Common.Status","requestId":1,"type":"completion","version":"1.0","completionCode":"success"},"payload":{"devices":[]}}`,
		`{"header":{"name":"IdCard.Read","requestId":2,"type":"completion","version":"1.0","completionCode":"timeOut","errorDescription":"the command's timeout passed"},"payload":{}}`,
		`{"header":{"name":"IdCard.InsertCardEvent","requestId":2,"type":"event","version":"1.0"},"payload":{"device":"idcard0"}}`,
		`{"header":{"name":"Common.StatusChangedEvent","type":"unsolicited","version":"1.0"},"payload":{}}`,
		`{"header":{"name":"","type":"acknowledge","version":"1.0","status":"invalidMessage","errorDescription":"not JSON"},"payload":{}}`,
	}
	bad := []string{
		`not json`,
		`{"header":{"name":"Common.Status","requestId":1,"type":"acknowledge","version":"1.0"}}`,                                              // no payload
		`{"header":{"name":"Common.Status","requestId":1,"type":"acknowledge","version":"1.0"},"payload":[]}`,                                 // payload not an object
		`{"header":{"name":"Common.Status","requestId":1,"type":"acknowledge","version":"1.0"},"payload":{},"x":1}`,                           // extra field
		`{"header":{"name":"Common.Status","requestId":1,"type":"reply","version":"1.0"},"payload":{}}`,                                       // type
		`{"header":{"name":"Common.Status","requestId":1,"type":"completion","version":"1.0","completionCode":"ok"},"payload":{}}`,            // code
		`{"header":{"name":"Common.Status","requestId":1,"type":"completion","version":"1.0","completionCode":"hardwareError"},"payload":{}}`, // no description
		`{"header":{"name":"Common.Status","type":"completion","version":"1.0","completionCode":"success"},"payload":{}}`,                     // no requestId
		`{"header":{"name":"Common.Status","requestId":1,"type":"completion","version":"2.0","completionCode":"success"},"payload":{}}`,       // version
		`{"header":{"name":"Common.Status","requestId":1,"type":"event","version":"1.0","completionCode":"success"},"payload":{}}`,            // code in an event
		`{"header":{"name":"Common.StatusChangedEvent","requestId":3,"type":"unsolicited","version":"1.0"},"payload":{}}`,                     // requestId in unsolicited
		`{"header":{"name":"status","requestId":1,"type":"event","version":"1.0"},"payload":{}}`,                                              // name
		`{"header":{"name":"Common.Status","requestId":1,"type":"acknowledge","version":"1.0","status":"fine"},"payload":{}}`,                 // status
	}
	for _, s := range good {
		if _, err := Conform([]byte(s)); err != nil {
			t.Errorf("refused %s: %v", s, err)
		}
	}
	for _, s := range bad {
		if _, err := Conform([]byte(s)); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
}
