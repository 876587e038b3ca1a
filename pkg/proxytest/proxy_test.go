package proxytest

import (
	"bufio"
	"net"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1024)
				for {
					n, err := c.Read(b)
					if err != nil {
						return
					}
					c.Write(b[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestCutBlackholeRestore(t *testing.T) {
	p := New(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c, "a"); err != nil || got != "a\n" {
		t.Fatalf("through proxy: %q %v", got, err)
	}
	p.Blackhole()
	if _, err := roundTrip(c, "b"); err == nil {
		t.Fatal("blackholed connection still answered")
	}
	p.Restore()
	p.Cut()
	if c2, err := net.Dial("tcp", p.Addr); err == nil {
		if _, err := roundTrip(c2, "c"); err == nil {
			t.Fatal("cut proxy still forwarded")
		}
		c2.Close()
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c3, "d"); err != nil || got != "d\n" {
		t.Fatalf("after restore: %q %v", got, err)
	}
	c3.Close()
	c.Close()
}
