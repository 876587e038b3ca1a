package cases

import "sync"

// Notifier tells a citizen's subscribers (her open streams) that her cases changed. Subscribers
// then read the case events after the last one they sent, so a lost or merged notification
// costs at most a delay, never an update. NewLocal serves one hub process; several replicas on
// one database plug in one that also notifies the others (PostgreSQL LISTEN/NOTIFY).
type Notifier interface {
	Notify(account string)
	// Subscribe returns a channel that receives a value after every Notify of account (merged
	// while unread), and a function that ends the subscription.
	Subscribe(account string) (<-chan struct{}, func())
}

// Local is an in-process Notifier.
type Local struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewLocal returns an in-process Notifier.
func NewLocal() *Local { return &Local{subs: map[string]map[chan struct{}]struct{}{}} }

// Notify implements Notifier.
func (l *Local) Notify(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs[account] {
		select {
		case ch <- struct{}{}:
		default: // a notification is pending already
		}
	}
}

// Subscribe implements Notifier.
func (l *Local) Subscribe(account string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.subs[account] == nil {
		l.subs[account] = map[chan struct{}]struct{}{}
	}
	l.subs[account][ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs[account], ch)
		if len(l.subs[account]) == 0 {
			delete(l.subs, account)
		}
	}
}

// Subscribers returns how many streams are open (for metrics and tests).
func (l *Local) Subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.subs {
		n += len(s)
	}
	return n
}
