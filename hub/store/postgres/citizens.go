package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// store.Citizens on the identity tables (migration 0111). Whatever must hold across replicas (a
// code spent once, a ceremony taken once, a card bound to one account) is decided by one
// statement or a row lock, never by a read followed by a write.

// --- ID card binding

func (s *Store) BindIDCard(ctx context.Context, accountID string, hash, enc []byte) error {
	return idErr("bind id card", s.tx(ctx, func(tx pgx.Tx) error {
		var held []byte
		if err := tx.QueryRow(ctx, `SELECT id_number_hash FROM idp_accounts WHERE id = $1 FOR UPDATE`, accountID).Scan(&held); err != nil {
			return err
		}
		switch {
		case bytes.Equal(held, hash):
			return nil
		case len(held) > 0:
			return fmt.Errorf("account holds another card: %w", store.ErrConflict)
		}
		_, err := tx.Exec(ctx, `UPDATE idp_accounts SET id_number_hash = $2, id_number_enc = $3 WHERE id = $1`, accountID, hash, enc)
		return err
	}))
}

func (s *Store) UnbindIDCard(ctx context.Context, accountID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_accounts SET id_number_hash = NULL, id_number_enc = NULL
		WHERE id = $1 AND id_number_hash IS NOT NULL`, accountID)
	return idAffected("unbind id card", tag, err)
}

func (s *Store) MergeCardAccount(ctx context.Context, from, into string, hash, enc []byte, at time.Time) error {
	return idErr("merge card account", s.tx(ctx, func(tx pgx.Tx) error {
		// Both rows locked, in one order, so that two merges or a merge and a binding serialize.
		rows, _ := tx.Query(ctx, `SELECT id, kind, COALESCE(username, ''), password_hash, id_number_hash FROM idp_accounts
			WHERE id = ANY($1) ORDER BY id FOR UPDATE`, []string{from, into})
		type row struct {
			id, kind, user, password string
			held                     []byte
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.kind, &x.user, &x.password, &x.held)
			return x, err
		})
		if err != nil {
			return err
		}
		var f, i *row
		for k := range got {
			switch got[k].id {
			case from:
				f = &got[k]
			case into:
				i = &got[k]
			}
		}
		if f == nil || i == nil || from == into {
			return pgx.ErrNoRows
		}
		var creds int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM idp_passkeys WHERE account_id = $1) +
			(SELECT count(*) FROM idp_phones WHERE account_id = $1) + (SELECT count(*) FROM idp_links WHERE account_id = $1)`,
			from).Scan(&creds); err != nil {
			return err
		}
		if f.kind != "citizen" || !bytes.Equal(f.held, hash) || f.user != "" || f.password != "" || creds > 0 {
			return fmt.Errorf("%s is not a card-only account holding the card: %w", from, store.ErrConflict)
		}
		if len(i.held) > 0 {
			return fmt.Errorf("account holds a card: %w", store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO idp_consents (account_id, client_id, scopes, granted_at)
			SELECT $1, client_id, scopes, granted_at FROM idp_consents WHERE account_id = $2
			ON CONFLICT (account_id, client_id) DO NOTHING`, into, from); err != nil {
			return err
		}
		if err := deleteAccountTx(ctx, tx, from, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE idp_accounts SET id_number_hash = $2, id_number_enc = $3 WHERE id = $1`, into, hash, enc)
		return err
	}))
}

// --- browser sessions of an account

func (s *Store) ListBrowserSessions(ctx context.Context, userID string, now time.Time) ([]store.BrowserSession, error) {
	rows, _ := s.pool.Query(ctx, `SELECT hash, amr, auth_time, expires_at FROM idp_browser_sessions
		WHERE user_id = $1 AND expires_at > $2 ORDER BY auth_time DESC`, userID, ts(now))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.BrowserSession, error) {
		b := store.BrowserSession{UserID: userID}
		var authTime, expires int64
		err := r.Scan(&b.Hash, &b.AMR, &authTime, &expires)
		b.AuthTime, b.ExpiresAt = fromTS(authTime), fromTS(expires)
		return b, err
	})
	if out == nil {
		out = []store.BrowserSession{}
	}
	return out, idErr("list browser sessions", err)
}

func (s *Store) DeleteBrowserSessions(ctx context.Context, userID string, except []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idp_browser_sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR hash <> $2)`,
		userID, except)
	return idErr("delete browser sessions", err)
}

// --- account deletion

func (s *Store) DeleteAccount(ctx context.Context, id string, at time.Time) error {
	return idErr("delete account", s.tx(ctx, func(tx pgx.Tx) error { return deleteAccountTx(ctx, tx, id, at) }))
}

// deleteAccountTx removes the account and all the identity store keeps of it, and records its
// deletion as pending (DeleteAccount); pgx.ErrNoRows when there is no such account.
func deleteAccountTx(ctx context.Context, tx pgx.Tx, id string, at time.Time) error {
	tag, err := tx.Exec(ctx, `DELETE FROM idp_accounts WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	for _, q := range []string{
		`DELETE FROM idp_phone_codes WHERE key IN (SELECT hash FROM idp_phones WHERE account_id = $1)`,
		`DELETE FROM idp_phones WHERE account_id = $1`,
		`DELETE FROM idp_passkeys WHERE account_id = $1`,
		`DELETE FROM idp_links WHERE account_id = $1`,
		`DELETE FROM idp_consents WHERE account_id = $1`,
		`DELETE FROM idp_browser_sessions WHERE user_id = $1`,
		`DELETE FROM idp_tokens WHERE user_id = $1`,
		`DELETE FROM idp_device_auths WHERE user_id = $1`,
		`DELETE FROM idp_guesses WHERE user_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, id); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO idp_deletions (account_id, deleted_at) VALUES ($1, $2)
		ON CONFLICT (account_id) DO NOTHING`, id, ts(at))
	return err
}

func (s *Store) PendingDeletions(ctx context.Context) ([]store.Deletion, error) {
	rows, _ := s.pool.Query(ctx, `SELECT account_id, deleted_at FROM idp_deletions ORDER BY deleted_at, account_id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Deletion, error) {
		var d store.Deletion
		var at int64
		err := r.Scan(&d.AccountID, &at)
		d.DeletedAt = fromTS(at)
		return d, err
	})
	return out, idErr("pending deletions", err)
}

func (s *Store) FinishDeletion(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idp_deletions WHERE account_id = $1`, id)
	return idErr("finish deletion", err)
}

// --- passkeys

const passkeyCols = `id, account_id, name, credential, created_at, last_used`

func (s *Store) AddPasskey(ctx context.Context, k store.Passkey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_passkeys (`+passkeyCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.AccountID, k.Name, k.Credential, ts(k.CreatedAt), ts(k.LastUsed))
	return idErr("add passkey", err)
}

func scanPasskey(r pgx.Row) (store.Passkey, error) {
	var k store.Passkey
	var created, used int64
	err := r.Scan(&k.ID, &k.AccountID, &k.Name, &k.Credential, &created, &used)
	k.CreatedAt, k.LastUsed = fromTS(created), fromTS(used)
	return k, err
}

func (s *Store) GetPasskey(ctx context.Context, id []byte) (store.Passkey, error) {
	k, err := scanPasskey(s.pool.QueryRow(ctx, `SELECT `+passkeyCols+` FROM idp_passkeys WHERE id = $1`, id))
	return k, idErr("get passkey", err)
}

func (s *Store) ListPasskeys(ctx context.Context, accountID string) ([]store.Passkey, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+passkeyCols+` FROM idp_passkeys WHERE account_id = $1 ORDER BY created_at, id`, accountID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Passkey, error) { return scanPasskey(r) })
	if out == nil {
		out = []store.Passkey{}
	}
	return out, idErr("list passkeys", err)
}

func (s *Store) UsePasskey(ctx context.Context, id, credential []byte, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_passkeys SET credential = $2, last_used = $3 WHERE id = $1`, id, credential, ts(at))
	return idAffected("use passkey", tag, err)
}

func (s *Store) DeletePasskey(ctx context.Context, accountID string, id []byte) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idp_passkeys WHERE account_id = $1 AND id = $2`, accountID, id)
	return idAffected("delete passkey", tag, err)
}

// --- phones and codes

func (s *Store) SetPhone(ctx context.Context, p store.Phone) error {
	return idErr("set phone", s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM idp_accounts WHERE id = $1`, p.AccountID).Scan(&one); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO idp_phones (account_id, hash, enc, verified_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account_id) DO UPDATE SET hash = excluded.hash, enc = excluded.enc, verified_at = excluded.verified_at`,
			p.AccountID, p.Hash, p.Enc, ts(p.VerifiedAt))
		return err
	}))
}

func (s *Store) PhoneOf(ctx context.Context, accountID string) (store.Phone, error) {
	p := store.Phone{AccountID: accountID}
	var at int64
	err := s.pool.QueryRow(ctx, `SELECT hash, enc, verified_at FROM idp_phones WHERE account_id = $1`, accountID).
		Scan(&p.Hash, &p.Enc, &at)
	p.VerifiedAt = fromTS(at)
	return p, idErr("phone", err)
}

func (s *Store) AccountByPhone(ctx context.Context, hash []byte) (store.Account, error) {
	return s.account(ctx, "id = (SELECT account_id FROM idp_phones WHERE hash = $1)", hash)
}

// IssuePhoneCode locks the number's row, so that codes to one number asked for on several
// replicas at once take turns (two first codes at once both count as the first).
func (s *Store) IssuePhoneCode(ctx context.Context, c store.PhoneCode, l store.PhoneCodeLimits) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var created, start int64
		var sends int
		err := tx.QueryRow(ctx, `SELECT created_at, window_start, sends FROM idp_phone_codes WHERE key = $1 FOR UPDATE`, c.Key).
			Scan(&created, &start, &sends)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		windowStart, n, err := l.Next(err == nil, fromTS(created), fromTS(start), sends, c.CreatedAt)
		if err != nil {
			return err
		}
		keep := max(ts(c.ExpiresAt), ts(windowStart.Add(l.Window)))
		_, err = tx.Exec(ctx, `INSERT INTO idp_phone_codes (key, code_hash, created_at, expires_at, tries, window_start, sends,
			keep_until) VALUES ($1, $2, $3, $4, 0, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET code_hash = excluded.code_hash,
			created_at = excluded.created_at, expires_at = excluded.expires_at, tries = 0, window_start = excluded.window_start,
			sends = excluded.sends, keep_until = excluded.keep_until`,
			c.Key, c.CodeHash, ts(c.CreatedAt), ts(c.ExpiresAt), ts(windowStart), n, keep)
		return err
	})
	if errors.Is(err, store.ErrLimited) {
		return err
	}
	return idErr("issue phone code", err)
}

func (s *Store) VerifyPhoneCode(ctx context.Context, key, codeHash []byte, now time.Time, maxTries int) error {
	// SET reads the row as it was: the attempt counts, and a matching code is spent with it.
	var spent bool
	err := s.pool.QueryRow(ctx, `UPDATE idp_phone_codes SET tries = tries + 1,
		code_hash = CASE WHEN code_hash = $1 THEN ''::bytea ELSE code_hash END,
		expires_at = CASE WHEN code_hash = $1 THEN 0 ELSE expires_at END
		WHERE key = $2 AND expires_at > $3 AND tries < $4 RETURNING expires_at = 0`,
		codeHash, key, ts(now), maxTries).Scan(&spent)
	if err == nil && !spent {
		err = pgx.ErrNoRows
	}
	return idErr("verify phone code", err)
}

// --- links

const linkCols = `connector, subject, account_id, name, created_at`

func (s *Store) AddLink(ctx context.Context, l store.Link) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_links (`+linkCols+`) VALUES ($1, $2, $3, $4, $5)`,
		l.Connector, l.Subject, l.AccountID, l.Name, ts(l.CreatedAt))
	return idErr("add link", err)
}

func scanLink(r pgx.Row) (store.Link, error) {
	var l store.Link
	var created int64
	err := r.Scan(&l.Connector, &l.Subject, &l.AccountID, &l.Name, &created)
	l.CreatedAt = fromTS(created)
	return l, err
}

func (s *Store) GetLink(ctx context.Context, connector, subject string) (store.Link, error) {
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkCols+` FROM idp_links WHERE connector = $1 AND subject = $2`,
		connector, subject))
	return l, idErr("get link", err)
}

func (s *Store) ListLinks(ctx context.Context, accountID string) ([]store.Link, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+linkCols+` FROM idp_links WHERE account_id = $1
		ORDER BY created_at, connector, subject`, accountID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Link, error) { return scanLink(r) })
	if out == nil {
		out = []store.Link{}
	}
	return out, idErr("list links", err)
}

func (s *Store) DeleteLink(ctx context.Context, accountID, connector, subject string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idp_links WHERE account_id = $1 AND connector = $2 AND subject = $3`,
		accountID, connector, subject)
	return idAffected("delete link", tag, err)
}

// --- consents

func (s *Store) PutConsent(ctx context.Context, c store.Consent) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_consents (account_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.AccountID, c.ClientID, list(c.Scopes), ts(c.GrantedAt))
	return idErr("put consent", err)
}

func scanConsent(r pgx.Row) (store.Consent, error) {
	var c store.Consent
	var at int64
	err := r.Scan(&c.AccountID, &c.ClientID, &c.Scopes, &at)
	c.GrantedAt = fromTS(at)
	return c, err
}

func (s *Store) GetConsent(ctx context.Context, accountID, clientID string) (store.Consent, error) {
	c, err := scanConsent(s.pool.QueryRow(ctx, `SELECT account_id, client_id, scopes, granted_at FROM idp_consents
		WHERE account_id = $1 AND client_id = $2`, accountID, clientID))
	return c, idErr("get consent", err)
}

func (s *Store) ListConsents(ctx context.Context, accountID string) ([]store.Consent, error) {
	rows, _ := s.pool.Query(ctx, `SELECT account_id, client_id, scopes, granted_at FROM idp_consents
		WHERE account_id = $1 ORDER BY client_id`, accountID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Consent, error) { return scanConsent(r) })
	if out == nil {
		out = []store.Consent{}
	}
	return out, idErr("list consents", err)
}

func (s *Store) DeleteConsent(ctx context.Context, accountID, clientID string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idp_consents WHERE account_id = $1 AND client_id = $2`, accountID, clientID)
	return idAffected("delete consent", tag, err)
}

// --- ceremonies

func (s *Store) PutCeremony(ctx context.Context, c store.Ceremony) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_ceremonies (id, kind, doc, expires_at) VALUES ($1, $2, $3, $4)`,
		c.ID, c.Kind, c.Doc, ts(c.ExpiresAt))
	return idErr("put ceremony", err)
}

func (s *Store) TakeCeremony(ctx context.Context, id, kind string, now time.Time) (store.Ceremony, error) {
	c := store.Ceremony{ID: id, Kind: kind}
	var exp int64
	err := s.pool.QueryRow(ctx, `DELETE FROM idp_ceremonies WHERE id = $1 AND kind = $2 RETURNING doc, expires_at`, id, kind).
		Scan(&c.Doc, &exp)
	if err != nil {
		return c, idErr("take ceremony", err)
	}
	if c.ExpiresAt = fromTS(exp); !now.Before(c.ExpiresAt) {
		return store.Ceremony{}, fmt.Errorf("take ceremony: expired: %w", store.ErrNotFound)
	}
	return c, nil
}
