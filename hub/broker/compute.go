package broker

import (
	"net"
	"sync/atomic"
)

// computeConn is a kiosk's TCP connection under its TLS handshake: it holds one of the broker's
// compute tokens (Config.HandshakeCompute) while the handshake computes, from each read that
// brings the kiosk's bytes until the handshake next writes or reads (then it waits on the
// kiosk, or on the network, and needs no core). After the handshake it is a plain connection.
// Read and Write are called by the handshake's goroutine only until handshaken; after it, by the
// connection's reader and writer as usual, without tokens.
type computeConn struct {
	net.Conn
	tokens chan struct{}
	stop   <-chan struct{} // the broker stopping: no token is waited for then
	held   bool            // a token held (the handshake's goroutine only)
	done   atomic.Bool     // handshaken
}

func (c *computeConn) Read(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Read(p)
	}
	c.release()
	n, err := c.Conn.Read(p)
	if err == nil {
		select {
		case c.tokens <- struct{}{}:
			c.held = true
		case <-c.stop:
		}
	}
	return n, err
}

func (c *computeConn) Write(p []byte) (int, error) {
	if !c.done.Load() {
		c.release()
	}
	return c.Conn.Write(p)
}

// handshaken gives back the token, if held, and ends the handshake's use of tokens.
func (c *computeConn) handshaken() {
	c.release()
	c.done.Store(true)
}

func (c *computeConn) release() {
	if c.held {
		c.held = false
		<-c.tokens
	}
}
