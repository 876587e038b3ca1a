package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// lockAccount serializes the case writes of one account across replicas (a transaction-scoped
// advisory lock), so that its case events are numbered in the order they commit and a reader of
// "the events after N" never misses one that commits late.
const lockAccount = `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`

// CreateCase stores a new case and its first event.
func (s *Store) CreateCase(ctx context.Context, c store.Case) (store.CaseEvent, error) {
	if err := store.CheckCase(c); err != nil {
		return store.CaseEvent{}, err
	}
	var ev store.CaseEvent
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockAccount, c.Account); err != nil {
			return fmt.Errorf("store: case: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO cases (`+sqlrow.CaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			sqlrow.CaseArgs(&c)...)
		if err != nil {
			return exists(err, "case", c.ClientID+"/"+c.Ref)
		}
		ev, err = addCaseEvent(ctx, tx, store.CaseEvent{CaseID: c.ID, Account: c.Account, Status: c.Status, At: c.CreatedAt})
		return err
	})
	return ev, err
}

func addCaseEvent(ctx context.Context, tx pgx.Tx, e store.CaseEvent) (store.CaseEvent, error) {
	err := tx.QueryRow(ctx, `INSERT INTO case_events (case_id, account, status, note, document_id, at) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING seq`, e.CaseID, e.Account, e.Status, e.Note, e.DocumentID, ts(e.At)).Scan(&e.Seq)
	if err != nil {
		return e, fmt.Errorf("store: case event: %w", err)
	}
	return e, nil
}

// GetCase returns a case with its timeline and documents.
func (s *Store) GetCase(ctx context.Context, id string) (store.Case, error) {
	c, err := sqlrow.Case(s.pool.QueryRow(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE id = $1`, id))
	if err != nil {
		return c, notFound(err, "case", id)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.CaseEventCols+` FROM case_events WHERE case_id = $1 ORDER BY seq`, id)
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	c.Timeline, err = sqlrow.CaseEvents(rows)
	rows.Close()
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT `+sqlrow.CaseDocCols+`, NULL::bytea FROM case_documents WHERE case_id = $1 ORDER BY created_at, id`, id)
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	defer rows.Close()
	if c.Documents, err = sqlrow.CaseDocuments(rows); err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	return c, nil
}

// CaseByRef finds a client's case by its reference.
func (s *Store) CaseByRef(ctx context.Context, clientID, ref string) (store.Case, error) {
	c, err := sqlrow.Case(s.pool.QueryRow(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE client_id = $1 AND ref = $2`, clientID, ref))
	if err != nil {
		return c, notFound(err, "case", clientID+"/"+ref)
	}
	return c, nil
}

// lockCase locks an account's case writes and the case row, and returns its status and account.
func lockCase(ctx context.Context, tx pgx.Tx, id string) (status, account string, err error) {
	if err := tx.QueryRow(ctx, `SELECT account FROM cases WHERE id = $1`, id).Scan(&account); err != nil {
		return "", "", notFound(err, "case", id)
	}
	if _, err := tx.Exec(ctx, lockAccount, account); err != nil {
		return "", "", fmt.Errorf("store: case %s: %w", id, err)
	}
	if err := tx.QueryRow(ctx, `SELECT status FROM cases WHERE id = $1 FOR UPDATE`, id).Scan(&status); err != nil {
		return "", "", notFound(err, "case", id)
	}
	return status, account, nil
}

// SetCaseStatus moves a case and records the event.
func (s *Store) SetCaseStatus(ctx context.Context, id, status, note string, at time.Time) (store.CaseEvent, error) {
	var ev store.CaseEvent
	err := s.tx(ctx, func(tx pgx.Tx) error {
		from, account, err := lockCase(ctx, tx, id)
		if err != nil {
			return err
		}
		if !store.CaseTransitionAllowed(from, status) {
			return fmt.Errorf("%w: case %s from %s to %s", store.ErrBadTransition, id, from, status)
		}
		if _, err := tx.Exec(ctx, `UPDATE cases SET status = $1, updated_at = $2 WHERE id = $3`, status, ts(at), id); err != nil {
			return fmt.Errorf("store: case %s: %w", id, err)
		}
		ev, err = addCaseEvent(ctx, tx, store.CaseEvent{CaseID: id, Account: account, Status: status, Note: note, At: at})
		return err
	})
	return ev, err
}

// AddCaseDocument stores a document and records the event.
func (s *Store) AddCaseDocument(ctx context.Context, d store.CaseDocument) (store.CaseEvent, error) {
	var ev store.CaseEvent
	err := s.tx(ctx, func(tx pgx.Tx) error {
		status, account, err := lockCase(ctx, tx, d.CaseID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO case_documents (`+sqlrow.CaseDocCols+`, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.ID, d.CaseID, d.Kind, d.Name, d.ContentType, d.Size, d.Encrypted, ts(d.CreatedAt), d.Content); err != nil {
			return exists(err, "document", d.ID)
		}
		if _, err := tx.Exec(ctx, `UPDATE cases SET updated_at = $1 WHERE id = $2`, ts(d.CreatedAt), d.CaseID); err != nil {
			return fmt.Errorf("store: case %s: %w", d.CaseID, err)
		}
		ev, err = addCaseEvent(ctx, tx, store.CaseEvent{CaseID: d.CaseID, Account: account, Status: status, DocumentID: d.ID, At: d.CreatedAt})
		return err
	})
	return ev, err
}

// CaseDocument returns a document with its content.
func (s *Store) CaseDocument(ctx context.Context, caseID, docID string) (store.CaseDocument, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.CaseDocCols+`, content FROM case_documents WHERE case_id = $1 AND id = $2`, caseID, docID)
	if err != nil {
		return store.CaseDocument{}, fmt.Errorf("store: document %s: %w", docID, err)
	}
	defer rows.Close()
	ds, err := sqlrow.CaseDocuments(rows)
	if err != nil {
		return store.CaseDocument{}, fmt.Errorf("store: document %s: %w", docID, err)
	}
	if len(ds) == 0 {
		return store.CaseDocument{}, notFound(pgx.ErrNoRows, "document", docID)
	}
	return ds[0], nil
}

// ListCases returns an account's cases, most recently changed first.
func (s *Store) ListCases(ctx context.Context, account string, limit int) ([]store.Case, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE account = $1 ORDER BY updated_at DESC, id LIMIT $2`,
		account, store.CaseLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: list cases: %w", err)
	}
	defer rows.Close()
	out := []store.Case{}
	for rows.Next() {
		c, err := sqlrow.Case(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list cases: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CaseEventsAfter returns an account's case events after seq.
func (s *Store) CaseEventsAfter(ctx context.Context, account string, afterSeq int64, limit int) ([]store.CaseEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.CaseEventCols+` FROM case_events WHERE account = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		account, afterSeq, store.CaseLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store: case events: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.CaseEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("store: case events: %w", err)
	}
	return out, nil
}

// DeleteAccountCases deletes an account's cases, their events and documents.
func (s *Store) DeleteAccountCases(ctx context.Context, account string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			lockAccount,
			`DELETE FROM case_documents WHERE case_id IN (SELECT id FROM cases WHERE account = $1)`,
			`DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE account = $1)`,
			`DELETE FROM cases WHERE account = $1`,
		} {
			if _, err := tx.Exec(ctx, q, account); err != nil {
				return fmt.Errorf("store: delete cases: %w", err)
			}
		}
		return nil
	})
}

// MoveAccountCases gives one account's cases and their events to another.
func (s *Store) MoveAccountCases(ctx context.Context, from, into string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		for _, a := range []string{min(from, into), max(from, into)} { // locks in one order
			if _, err := tx.Exec(ctx, lockAccount, a); err != nil {
				return fmt.Errorf("store: move cases: %w", err)
			}
		}
		for _, q := range []string{`UPDATE case_events SET account = $1 WHERE account = $2`, `UPDATE cases SET account = $1 WHERE account = $2`} {
			if _, err := tx.Exec(ctx, q, into, from); err != nil {
				return fmt.Errorf("store: move cases: %w", err)
			}
		}
		return nil
	})
}
