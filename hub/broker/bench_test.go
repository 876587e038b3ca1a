package broker_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/broker/brokertest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkIdleClients connects 300 devices over mTLS (raw clients without goroutines of their
// own), each subscribed to its ack topic, and reports heap+stack in use per connected client.
// The figure includes the client side's tls.Conn, so it is an upper bound for the broker.
// Run with -benchtime=1x.
func BenchmarkIdleClients(b *testing.B) {
	const n = 300
	env := brokertest.Start(b, brokertest.Options{})
	cfgs := make([]*tls.Config, n)
	for i := range cfgs {
		cfgs[i] = env.DeviceTLS(b, fmt.Sprintf("kiosk-%04d", i))
	}
	var per float64
	for b.Loop() {
		before := memInUse()
		conns := make([]*tls.Conn, n)
		for i := range conns {
			id := fmt.Sprintf("kiosk-%04d", i)
			conns[i] = rawDial(b, env, cfgs[i], id)
			conns[i].Write(packet(0x82, []byte{0, 1}, str(wire.Topic(id, wire.ChAck)), []byte{1}))
			suback := make([]byte, 5)
			if _, err := io.ReadFull(conns[i], suback); err != nil || suback[4] != 1 {
				b.Fatalf("SUBACK %x %v", suback, err)
			}
		}
		per = float64(memInUse()-before) / n
		for _, c := range conns {
			c.Close()
		}
		brokertest.Eventually(b, 10*time.Second, "sessions end", func() bool {
			for i := range n {
				if env.Broker.Connected(fmt.Sprintf("kiosk-%04d", i)) {
					return false
				}
			}
			return true
		})
	}
	b.ReportMetric(per, "B/client")
	b.ReportMetric(tlsBaseline(b, env, cfgs), "tls-pair-B/client")
}

// tlsBaseline is the cost of the same mTLS connections to a bare TLS server that parks one
// reading goroutine per connection: subtracted from B/client it leaves what mochi and the guard
// add per client.
func tlsBaseline(b *testing.B, env *brokertest.Env, cfgs []*tls.Config) float64 {
	srv, err := env.CA.ServerTLSCert([]string{"127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: env.CA.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done, ready := make(chan struct{}), make(chan struct{}, len(cfgs))
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Read(make([]byte, 1))
				ready <- struct{}{}
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	before := memInUse()
	conns := make([]*tls.Conn, len(cfgs))
	for i, cfg := range cfgs {
		if conns[i], err = tls.Dial("tcp", ln.Addr().String(), cfg); err != nil {
			b.Fatal(err)
		}
		conns[i].Write([]byte{0}) // the server side completes its handshake on its first read
	}
	for range cfgs {
		<-ready
	}
	per := float64(memInUse()-before) / float64(len(cfgs))
	for _, c := range conns {
		c.Close()
	}
	ln.Close()
	<-done
	return per
}

// BenchmarkInlinePublish measures QoS 1 uplink throughput from one device through the guard and
// mochi into an inline subscriber (512-byte payloads, PUBACKs drained concurrently).
func BenchmarkInlinePublish(b *testing.B) {
	env := brokertest.Start(b, brokertest.Options{})
	const id = "kiosk-p"
	var got atomic.Int64
	env.Broker.Subscribe(wire.Filter(wire.ChUp), func(string, string, []byte) { got.Add(1) })
	c := rawDial(b, env, env.DeviceTLS(b, id), id)
	go io.Copy(io.Discard, c) // PUBACKs
	pk := publish(wire.Topic(id, wire.ChUp), 1, 1, make([]byte, 512))
	w := bufio.NewWriterSize(c, 64<<10)
	b.SetBytes(int64(len(pk)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		pid := uint16(i%65535 + 1)
		pk[len(pk)-514], pk[len(pk)-513] = byte(pid>>8), byte(pid)
		w.Write(pk)
	}
	w.Flush()
	brokertest.Eventually(b, time.Minute, "all delivered", func() bool { return got.Load() == int64(b.N) })
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	c.Close()
}
