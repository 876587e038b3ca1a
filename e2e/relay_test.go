package e2e

import (
	"bufio"
	"crypto/tls"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/hub/ca"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// forgingRelay stands between an agent and the hub as a hub with a broken ack path would: it
// terminates the agent's TLS with a certificate from the hub's own CA, dials the hub with the
// agent's client certificate, and relays MQTT packets both ways, except the forge-th uplink
// batch: that one it acks to the agent itself (PUBACK, then a cumulative ack up to the batch's
// last seq) and never passes on. The agent then deletes records the hub never stored. It exists
// only in this test, so production code carries no "ack early" switch.
type forgingRelay struct {
	Addr   string
	forged chan []uint64 // the seqs of the forged batch, sent once
	ln     net.Listener
	ups    atomic.Int64
	forge  int64
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newForgingRelay(t *testing.T, h *hub, agentDir string, forge int) *forgingRelay {
	t.Helper()
	authority, err := ca.LoadOrCreate(filepath.Join(h.dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := enroll.Load(agentDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	r := &forgingRelay{Addr: ln.Addr().String(), forged: make(chan []uint64, 1), ln: ln, forge: int64(forge)}
	up := id.TLSConfig()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := tls.Dial("tcp", h.mqttAddr, up)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, u)
			r.mu.Unlock()
			var agentMu sync.Mutex // both directions write to the agent
			r.wg.Add(2)
			go r.pipe(c, u, &agentMu)
			go r.down(u, c, &agentMu)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// pipe relays agent -> hub, forging the ack of one batch.
func (r *forgingRelay) pipe(agent, hub net.Conn, agentMu *sync.Mutex) {
	defer r.wg.Done()
	defer agent.Close()
	defer hub.Close()
	in := bufio.NewReader(agent)
	for {
		p, err := packets.ReadPacket(in)
		if err != nil {
			return
		}
		if pub, ok := p.(*packets.PublishPacket); ok && strings.HasSuffix(pub.TopicName, "/"+string(wire.ChUp)) && r.ups.Add(1) == r.forge {
			b, err := wire.DecodeBatch(pub.Payload)
			if err != nil || len(b.Records) == 0 {
				return
			}
			devID, _, _ := wire.ParseTopic(pub.TopicName)
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = pub.MessageID
			msg := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			msg.TopicName = wire.Topic(devID, wire.ChAck)
			msg.Payload = wire.Encode(wire.AckMsg{V: wire.Version, Epoch: b.Epoch, UpTo: b.Records[len(b.Records)-1].Seq})
			agentMu.Lock()
			err = ack.Write(agent)
			if err == nil {
				err = msg.Write(agent)
			}
			agentMu.Unlock()
			if err != nil {
				return
			}
			var seqs []uint64
			for _, rec := range b.Records {
				seqs = append(seqs, rec.Seq)
			}
			r.forged <- seqs
			continue
		}
		if err := p.Write(hub); err != nil {
			return
		}
	}
}

// down relays hub -> agent unchanged.
func (r *forgingRelay) down(hub, agent net.Conn, agentMu *sync.Mutex) {
	defer r.wg.Done()
	defer agent.Close()
	defer hub.Close()
	in := bufio.NewReader(hub)
	for {
		p, err := packets.ReadPacket(in)
		if err != nil {
			return
		}
		agentMu.Lock()
		err = p.Write(agent)
		agentMu.Unlock()
		if err != nil {
			return
		}
	}
}

// The harness can fail: a hub whose ack path acks a batch it never committed makes the agent
// drop records, and the verification reports exactly those records lost.
func TestSoakHarnessCatchesEarlyAck(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	r := newForgingRelay(t, h, dir, 3)
	a := startAgent(t, "agent", dir, "--mqtt", r.Addr, "--synthetic-rate", "500")
	var forged []uint64
	select {
	case forged = <-r.forged:
	case <-time.After(30 * time.Second):
		t.Fatal("the relay saw no third batch within 30 s")
	}
	// Keep records flowing past the hole, then give the agent every chance to deliver.
	waitFor(t, 10*time.Second, "records after the forged batch", func() bool { return readOutbox(t, dir).Next > forged[len(forged)-1]+200 })
	a.stop()
	if drain(t, "agent-final", dir, 3*time.Second, "--mqtt", r.Addr) {
		t.Error("outbox drained, although the hub never acks over the hole")
	}
	c := verify(readOutbox(t, dir), h.records(id, ""))
	t.Logf("forged ack of seqs %d..%d: %s (first lost %v)", forged[0], forged[len(forged)-1], c, c.LostSeqs)
	if c.ok() {
		t.Fatalf("verification passed a run with a forged ack: %s", c)
	}
	want := forged[:min(len(forged), 10)]
	if c.Lost != len(forged) || !slices.Equal(c.LostSeqs, want) || c.Duplicated != 0 || c.OutOfOrder != 0 {
		t.Errorf("lost %d %v, want the %d forged records %v", c.Lost, c.LostSeqs, len(forged), want)
	}
	if c.Waiting == 0 {
		t.Error("no records waiting behind the hole")
	}
}
