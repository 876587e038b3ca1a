package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Root is the versioned root of every kioskfleet topic.
const Root = "kf/v1/dev/"

// Channel names the leaf of a device topic.
type Channel string

// Channels of a device's subtree.
const (
	ChHello    Channel = "hello"    // agent -> hub
	ChUp       Channel = "up"       // agent -> hub
	ChPresence Channel = "presence" // agent -> hub (retained, Last Will)
	ChAck      Channel = "ack"      // hub -> agent
	ChCmd      Channel = "cmd"      // hub -> agent
	ChDesired  Channel = "desired"  // hub -> agent
	// ChLog carries a log tail the hub asked for (LogBatch): QoS 0, best effort, never through
	// the outbox.
	ChLog Channel = "log" // agent -> hub
)

// Uplink channels are the ones a device publishes to; downlink the ones it subscribes to.
var (
	UplinkChannels   = []Channel{ChHello, ChUp, ChPresence, ChLog}
	DownlinkChannels = []Channel{ChAck, ChCmd, ChDesired}
)

// ErrBadTopic is returned for a topic outside the kioskfleet tree or with an invalid device ID.
var ErrBadTopic = errors.New("wire: bad topic")

// ErrBadDeviceID is returned for a device ID that does not match the allowed form.
var ErrBadDeviceID = errors.New("wire: bad device id")

// ValidDeviceID reports whether id is a valid device ID: 3 to 64 characters of [a-z0-9-], starting
// with a letter or digit. The form keeps IDs safe as MQTT topic levels, client IDs and certificate
// common names (no '/', '+', '#', '$', no spaces).
func ValidDeviceID(id string) bool {
	if len(id) < 3 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Topic returns the topic of channel ch in device id's subtree.
func Topic(id string, ch Channel) string { return Root + id + "/" + string(ch) }

// Filter returns the subscription filter for channel ch across all devices (hub side only).
func Filter(ch Channel) string { return Root + "+/" + string(ch) }

// ParseTopic splits a device topic into its device ID and channel.
func ParseTopic(topic string) (id string, ch Channel, err error) {
	rest, ok := strings.CutPrefix(topic, Root)
	if !ok {
		return "", "", fmt.Errorf("%w: %q is outside %s", ErrBadTopic, topic, Root)
	}
	id, leaf, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(leaf, "/") {
		return "", "", fmt.Errorf("%w: %q is not %s{id}/{channel}", ErrBadTopic, topic, Root)
	}
	if !ValidDeviceID(id) {
		return "", "", fmt.Errorf("%w: %w: %q", ErrBadTopic, ErrBadDeviceID, id)
	}
	switch c := Channel(leaf); c {
	case ChHello, ChUp, ChPresence, ChLog, ChAck, ChCmd, ChDesired:
		return id, c, nil
	}
	return "", "", fmt.Errorf("%w: unknown channel %q", ErrBadTopic, leaf)
}

// Allowed is the deny-by-default access rule for devices: device may write (publish, including as a
// Will) only to its own uplink channels and read (subscribe) only its own downlink channels, by exact
// topic. Wildcards, shared subscriptions, $SYS and every other device's subtree are refused.
func Allowed(device, topic string, write bool) bool {
	if !ValidDeviceID(device) {
		return false
	}
	id, ch, err := ParseTopic(topic)
	if err != nil || id != device {
		return false
	}
	list := DownlinkChannels
	if write {
		list = UplinkChannels
	}
	for _, c := range list {
		if c == ch {
			return true
		}
	}
	return false
}
