package escpossim

import (
	"fmt"
	"os"
	"sync"

	"github.com/kioskfleet/kioskfleet/drivers/internal/ptypair"
)

// Pty serves a Sim on a pseudo-terminal: the driver opens Path as its serial port.
type Pty struct {
	*Sim
	Path string

	master, slave *os.File
	wmu           sync.Mutex
	closeOnce     sync.Once
	done          chan struct{}
}

// NewPty starts a simulated printer on a new pseudo-terminal. Close stops it.
func NewPty() (*Pty, error) {
	master, slave, err := ptypair.Open()
	if err != nil {
		return nil, fmt.Errorf("escpossim: open pty: %w", err)
	}
	p := &Pty{Path: slave.Name(), master: master, slave: slave, done: make(chan struct{})}
	p.Sim = New(func(b []byte) {
		p.wmu.Lock()
		defer p.wmu.Unlock()
		_, _ = p.master.Write(b) // fails only after Unplug
	})
	go p.serve()
	return p, nil
}

func (p *Pty) serve() {
	defer close(p.done)
	buf := make([]byte, 4096)
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			_, _ = p.Sim.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// Unplug simulates pulling the cable: the pseudo-terminal goes away and the driver's reads and
// writes fail.
func (p *Pty) Unplug() {
	p.closeOnce.Do(func() {
		p.wmu.Lock()
		p.master.Close()
		p.slave.Close()
		p.wmu.Unlock()
	})
	<-p.done
}

// Close stops the simulator and waits for its goroutine.
func (p *Pty) Close() error {
	p.Unplug()
	return nil
}
