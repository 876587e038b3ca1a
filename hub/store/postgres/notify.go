package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

var _ store.Notifier = (*Store)(nil)

// changeChannel is the channel the triggers of migrations 0011 and 0110 notify on.
const changeChannel = "kf_change"

// Listen tells onChange of every change other replicas must act on, from PostgreSQL's
// LISTEN/NOTIFY on a connection of its own (outside the pool: it stays in LISTEN). A connection
// lost (the server restarted, the network cut) is replaced, with backoff up to 5 s, and onListen
// is called again.
func (s *Store) Listen(ctx context.Context, onListen func(), onChange func(store.Change)) error {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	wait := first
	for {
		listening := false
		err := s.listen(ctx, func() { listening = true; onListen() }, onChange)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listening {
			wait = first
		}
		s.log.Warn("listening for changes stopped; listening again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
	}
}

// listenIdle is how long the listening connection may be quiet before it is pinged: a connection
// that the network lost without a word would otherwise wait for notices forever.
const listenIdle = 15 * time.Second

func (s *Store) listen(ctx context.Context, onListen func(), onChange func(store.Change)) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+changeChannel); err != nil {
		return err
	}
	onListen()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		c, ok := parseChange(n.Payload)
		if !ok {
			s.log.Warn("unknown change notice ignored", "channel", n.Channel, "payload", n.Payload)
			continue
		}
		onChange(c)
	}
}

// parseChange reads a notice's payload, "kind:id".
func parseChange(payload string) (store.Change, bool) {
	kind, id, ok := strings.Cut(payload, ":")
	c := store.Change{Kind: store.ChangeKind(kind), ID: id}
	switch c.Kind {
	case store.ChangeCommand, store.ChangeDesired, store.ChangeRevoked, store.ChangeClient:
		return c, ok && id != ""
	case store.ChangeSigningKeys:
		return c, ok
	}
	return c, false
}
