package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
)

// CreateCase stores a new case and its first event.
func (s *Store) CreateCase(ctx context.Context, c store.Case) (store.CaseEvent, error) {
	if err := store.CheckCase(c); err != nil {
		return store.CaseEvent{}, err
	}
	var ev store.CaseEvent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cases (`+sqlrow.CaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sqlrow.CaseArgs(&c)...)
		if err != nil {
			return exists(err, "case", c.ClientID+"/"+c.Ref)
		}
		ev, err = addCaseEvent(ctx, tx, store.CaseEvent{CaseID: c.ID, Account: c.Account, Status: c.Status, At: c.CreatedAt})
		return err
	})
	return ev, err
}

func addCaseEvent(ctx context.Context, tx *sql.Tx, e store.CaseEvent) (store.CaseEvent, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO case_events (case_id, account, status, note, document_id, at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.CaseID, e.Account, e.Status, e.Note, e.DocumentID, ts(e.At))
	if err != nil {
		return e, fmt.Errorf("store: case event: %w", err)
	}
	e.Seq, err = res.LastInsertId()
	return e, err
}

// GetCase returns a case with its timeline and documents.
func (s *Store) GetCase(ctx context.Context, id string) (store.Case, error) {
	c, err := sqlrow.Case(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE id = ?`, id))
	if err != nil {
		return c, notFound(err, "case", id)
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.CaseEventCols+` FROM case_events WHERE case_id = ? ORDER BY seq`, id)
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	c.Timeline, err = sqlrow.CaseEvents(rows)
	rows.Close()
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	rows, err = s.db.R.QueryContext(ctx, `SELECT `+sqlrow.CaseDocCols+`, NULL FROM case_documents WHERE case_id = ? ORDER BY created_at, id`, id)
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	defer rows.Close()
	c.Documents, err = sqlrow.CaseDocuments(rows)
	if err != nil {
		return c, fmt.Errorf("store: case %s: %w", id, err)
	}
	return c, nil
}

// CaseByRef finds a client's case by its reference.
func (s *Store) CaseByRef(ctx context.Context, clientID, ref string) (store.Case, error) {
	c, err := sqlrow.Case(s.db.R.QueryRowContext(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE client_id = ? AND ref = ?`, clientID, ref))
	if err != nil {
		return c, notFound(err, "case", clientID+"/"+ref)
	}
	return c, nil
}

// SetCaseStatus moves a case and records the event.
func (s *Store) SetCaseStatus(ctx context.Context, id, status, note string, at time.Time) (store.CaseEvent, error) {
	var ev store.CaseEvent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var from, account string
		err := tx.QueryRowContext(ctx, `SELECT status, account FROM cases WHERE id = ?`, id).Scan(&from, &account)
		if err != nil {
			return notFound(err, "case", id)
		}
		if !store.CaseTransitionAllowed(from, status) {
			return fmt.Errorf("%w: case %s from %s to %s", store.ErrBadTransition, id, from, status)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cases SET status = ?, updated_at = ? WHERE id = ?`, status, ts(at), id); err != nil {
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var status, account string
		err := tx.QueryRowContext(ctx, `SELECT status, account FROM cases WHERE id = ?`, d.CaseID).Scan(&status, &account)
		if err != nil {
			return notFound(err, "case", d.CaseID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO case_documents (`+sqlrow.CaseDocCols+`, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.CaseID, d.Kind, d.Name, d.ContentType, d.Size, d.Encrypted, ts(d.CreatedAt), d.Content); err != nil {
			return exists(err, "document", d.ID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cases SET updated_at = ? WHERE id = ?`, ts(d.CreatedAt), d.CaseID); err != nil {
			return fmt.Errorf("store: case %s: %w", d.CaseID, err)
		}
		ev, err = addCaseEvent(ctx, tx, store.CaseEvent{CaseID: d.CaseID, Account: account, Status: status, DocumentID: d.ID, At: d.CreatedAt})
		return err
	})
	return ev, err
}

// CaseDocument returns a document with its content.
func (s *Store) CaseDocument(ctx context.Context, caseID, docID string) (store.CaseDocument, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.CaseDocCols+`, content FROM case_documents WHERE case_id = ? AND id = ?`, caseID, docID)
	if err != nil {
		return store.CaseDocument{}, fmt.Errorf("store: document %s: %w", docID, err)
	}
	defer rows.Close()
	ds, err := sqlrow.CaseDocuments(rows)
	if err != nil {
		return store.CaseDocument{}, fmt.Errorf("store: document %s: %w", docID, err)
	}
	if len(ds) == 0 {
		return store.CaseDocument{}, notFound(sql.ErrNoRows, "document", docID)
	}
	return ds[0], nil
}

// ListCases returns an account's cases, most recently changed first.
func (s *Store) ListCases(ctx context.Context, account string, limit int) ([]store.Case, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.CaseCols+` FROM cases WHERE account = ? ORDER BY updated_at DESC, id LIMIT ?`,
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
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+sqlrow.CaseEventCols+` FROM case_events WHERE account = ? AND seq > ? ORDER BY seq LIMIT ?`,
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
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM case_documents WHERE case_id IN (SELECT id FROM cases WHERE account = ?)`,
			`DELETE FROM case_events WHERE case_id IN (SELECT id FROM cases WHERE account = ?)`,
			`DELETE FROM cases WHERE account = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, account); err != nil {
				return fmt.Errorf("store: delete cases: %w", err)
			}
		}
		return nil
	})
}

// MoveAccountCases gives one account's cases and their events to another.
func (s *Store) MoveAccountCases(ctx context.Context, from, into string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`UPDATE case_events SET account = ? WHERE account = ?`, `UPDATE cases SET account = ? WHERE account = ?`} {
			if _, err := tx.ExecContext(ctx, q, into, from); err != nil {
				return fmt.Errorf("store: move cases: %w", err)
			}
		}
		return nil
	})
}
