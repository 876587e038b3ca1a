// Package inbox keeps the hub's commands on the kiosk: each command is persisted before it is acted
// on and runs at most once per command ID, across duplicate deliveries, restarts and kill -9.
//
// The inbox lives in the outbox's SQLite database and writes through the outbox's writer, so that
// recording a command's state and appending its cmd.result record are one transaction: a command
// is accepted (or expired) together with its "accepted" ("expired") result, and finished together
// with its "succeeded" ("failed") result. The hub therefore learns every state change exactly once.
package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

var (
	// ErrUnknown is returned by Finish for a command ID the inbox never received.
	ErrUnknown = errors.New("inbox: unknown command")
	// ErrNotRunning is returned by Finish for a command that is not running (finished, expired or
	// failed by Recover).
	ErrNotRunning = errors.New("inbox: command is not running")
	// ErrNotAccepted is returned by Start for a command that is not waiting to run.
	ErrNotAccepted = errors.New("inbox: command is not waiting to run")
	// ErrInvalid is returned for a command or result the inbox cannot record.
	ErrInvalid = errors.New("inbox: invalid")
)

// Interrupted is the error reported for a command found running after a restart.
const Interrupted = "interrupted by agent restart"

// ExpiredBeforeStart is the error reported for an accepted command whose time ran out while the
// agent was down, before it could start.
const ExpiredBeforeStart = "expired before it could start (agent restart)"

// Decision is what Receive decided about a command.
type Decision int

const (
	// Run: the command is new and accepted; the caller calls Start, runs it, then calls Finish.
	Run Decision = iota + 1
	// Duplicate: the command ID is known; nothing was recorded and the caller must not run it.
	Duplicate
	// Expired: the command arrived with no time left; it was reported expired and must not run.
	Expired
)

func (d Decision) String() string {
	switch d {
	case Run:
		return "run"
	case Duplicate:
		return "duplicate"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

const schema = `
CREATE TABLE IF NOT EXISTS inbox_commands (
	id          TEXT    PRIMARY KEY,
	name        TEXT    NOT NULL,
	state       TEXT    NOT NULL, -- accepted (waiting to run), running, succeeded, failed, expired
	received_at INTEGER NOT NULL, -- agent clock, Unix ms
	deadline    INTEGER NOT NULL, -- agent clock, Unix ms: received_at + expiresIn
	finished_at INTEGER,
	error       TEXT,
	args        BLOB              -- kept while accepted, to run the command after a restart
);
CREATE INDEX IF NOT EXISTS inbox_running ON inbox_commands (id) WHERE state = 'running';
`

// Inbox records commands in the outbox's database.
type Inbox struct {
	ob *outbox.SQLite
}

// Open creates the inbox's table in ob's database if needed. Call Recover before receiving.
func Open(ctx context.Context, ob *outbox.SQLite) (*Inbox, error) {
	if err := ob.Update(ctx, func(tx *outbox.Tx) error {
		if _, err := tx.Exec(schema); err != nil {
			return err
		}
		// Databases made before the args column get it now.
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('inbox_commands') WHERE name = 'args'`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			_, err := tx.Exec(`ALTER TABLE inbox_commands ADD COLUMN args BLOB`)
			return err
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("inbox: create schema: %w", err)
	}
	return &Inbox{ob: ob}, nil
}

// Receive records cmd, received at now on the agent's clock, and decides whether to run it. The
// command's time left (ExpiresIn) is measured from now, never compared with the hub's clock
// (ExpiresAt), because kiosk clocks drift. When Receive returns Run or Expired, the command and its
// cmd.result record are durable.
func (in *Inbox) Receive(ctx context.Context, cmd wire.Command, now time.Time) (Decision, error) {
	if cmd.ID == "" || len(cmd.ID) > 64 || !wire.ValidKind(cmd.Name) {
		return 0, fmt.Errorf("%w: command id %q name %q", ErrInvalid, cmd.ID, cmd.Name)
	}
	var d Decision
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM inbox_commands WHERE id = ?`, cmd.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			d = Duplicate
			return nil
		}
		state := wire.CmdAccepted
		d = Run
		if cmd.ExpiresIn <= 0 {
			d, state = Expired, wire.CmdExpired
		}
		rowState := "accepted"
		var finished, args any
		if d == Expired {
			rowState, finished = string(wire.CmdExpired), now.UnixMilli()
		} else if len(cmd.Args) > 0 {
			args = []byte(cmd.Args)
		}
		if _, err := tx.Exec(`INSERT INTO inbox_commands (id, name, state, received_at, deadline, finished_at, args)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, cmd.ID, cmd.Name, rowState, now.UnixMilli(), now.UnixMilli()+cmd.ExpiresIn, finished, args); err != nil {
			return err
		}
		_, err := tx.Append(wire.KindCmdResult, wire.Business, wire.Encode(wire.CommandResult{ID: cmd.ID, State: state}))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: receive %s: %w", cmd.ID, err)
	}
	return d, nil
}

// Finish records the outcome of a running command and appends its succeeded or failed result in
// the same transaction. output, if any, must be JSON.
func (in *Inbox) Finish(ctx context.Context, id string, ok bool, output json.RawMessage, errMsg string) error {
	if len(output) > 0 {
		if err := strictjson.Check(output); err != nil {
			return fmt.Errorf("%w: output of %s is not strict JSON: %w", ErrInvalid, id, err)
		}
	}
	res := wire.CommandResult{ID: id, State: wire.CmdSucceeded, Output: output}
	if !ok {
		res.State, res.Error = wire.CmdFailed, errMsg
	}
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		var state string
		if err := tx.QueryRow(`SELECT state FROM inbox_commands WHERE id = ?`, id).Scan(&state); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrUnknown
			}
			return err
		}
		if state != "running" && state != "accepted" {
			return fmt.Errorf("%w: it is %s", ErrNotRunning, state)
		}
		return finish(tx, res, time.Now())
	})
	if err != nil {
		return fmt.Errorf("inbox: finish %s: %w", id, err)
	}
	return nil
}

func finish(tx *outbox.Tx, res wire.CommandResult, now time.Time) error {
	var errCol any
	if res.Error != "" {
		errCol = res.Error
	}
	if _, err := tx.Exec(`UPDATE inbox_commands SET state = ?, finished_at = ?, error = ?, args = NULL WHERE id = ?`,
		string(res.State), now.UnixMilli(), errCol, res.ID); err != nil {
		return err
	}
	_, err := tx.Append(wire.KindCmdResult, wire.Business, wire.Encode(res))
	return err
}

// Start marks an accepted command as running, durably, just before the caller runs it: from here
// on a crash reports it interrupted instead of running it again.
func (in *Inbox) Start(ctx context.Context, id string) error {
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		res, err := tx.Exec(`UPDATE inbox_commands SET state = 'running' WHERE id = ? AND state = 'accepted'`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotAccepted
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("inbox: start %s: %w", id, err)
	}
	return nil
}

// Pending returns the commands accepted but not yet started (by a previous process, when called at
// start), oldest first, with the time they have left at now on the agent's clock. Those whose time
// ran out are reported failed (ExpiredBeforeStart) and not returned: a promise to run a queued
// command survives a crash, and an expired one still never runs.
func (in *Inbox) Pending(ctx context.Context, now time.Time) ([]wire.Command, error) {
	var out []wire.Command
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		out = out[:0]
		rows, err := tx.Query(`SELECT id, name, deadline, args FROM inbox_commands WHERE state = 'accepted' ORDER BY received_at, id`)
		if err != nil {
			return err
		}
		var expired []string
		for rows.Next() {
			var c wire.Command
			var deadline int64
			var args []byte
			if err := rows.Scan(&c.ID, &c.Name, &deadline, &args); err != nil {
				rows.Close()
				return err
			}
			if left := deadline - now.UnixMilli(); left > 0 {
				c.V, c.ExpiresIn, c.Args = wire.Version, left, json.RawMessage(args)
				out = append(out, c)
			} else {
				expired = append(expired, c.ID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range expired {
			if err := finish(tx, wire.CommandResult{ID: id, State: wire.CmdFailed, Error: ExpiredBeforeStart}, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: pending: %w", err)
	}
	return out, nil
}

// Recover reports every command left running by a previous process as failed with Interrupted,
// without running it again (at most once), and returns how many there were. Call it at start,
// before the first Receive.
func (in *Inbox) Recover(ctx context.Context) (int, error) {
	var n int
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		rows, err := tx.Query(`SELECT id FROM inbox_commands WHERE state = 'running' ORDER BY received_at, id`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := time.Now()
		for _, id := range ids {
			if err := finish(tx, wire.CommandResult{ID: id, State: wire.CmdFailed, Error: Interrupted}, now); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: recover: %w", err)
	}
	return n, nil
}

// Prune forgets finished commands finished before before, so the table does not grow forever. A
// pruned ID delivered again would run again: keep commands longer than the hub may redeliver them.
func (in *Inbox) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := in.ob.Update(ctx, func(tx *outbox.Tx) error {
		res, err := tx.Exec(`DELETE FROM inbox_commands WHERE state NOT IN ('running', 'accepted') AND finished_at < ?`, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	return n, nil
}
