package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// store.Citizens on the identity tables (migration 0111).

// --- ID card binding

func (s *identityStore) BindIDCard(ctx context.Context, accountID string, hash, enc []byte) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var held []byte
	if err := tx.QueryRowContext(ctx, `SELECT id_number_hash FROM idp_accounts WHERE id=?`, accountID).Scan(&held); err != nil {
		return idpErr("bind id card", err)
	}
	switch {
	case bytes.Equal(held, hash):
		return nil
	case len(held) > 0:
		return fmt.Errorf("bind id card: account holds another card: %w", store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idp_accounts SET id_number_hash=?, id_number_enc=? WHERE id=?`,
		hash, enc, accountID); err != nil {
		return idpErr("bind id card", err)
	}
	return idpErr("bind id card", tx.Commit())
}

func (s *identityStore) UnbindIDCard(ctx context.Context, accountID string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_accounts SET id_number_hash=NULL, id_number_enc=NULL
		WHERE id=? AND id_number_hash IS NOT NULL`, accountID)
	return idpAffected("unbind id card", res, err)
}

func (s *identityStore) MergeCardAccount(ctx context.Context, from, into string, hash, enc []byte, at time.Time) error {
	const what = "merge card account"
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var kind, user, password string
	var held []byte
	var creds int
	if err := tx.QueryRowContext(ctx, `SELECT kind, COALESCE(username,''), password_hash, id_number_hash,
		(SELECT count(*) FROM idp_passkeys WHERE account_id=?1) + (SELECT count(*) FROM idp_phones WHERE account_id=?1) +
		(SELECT count(*) FROM idp_links WHERE account_id=?1)
		FROM idp_accounts WHERE id=?1`, from).Scan(&kind, &user, &password, &held, &creds); err != nil {
		return idpErr(what, err)
	}
	if kind != "citizen" || !bytes.Equal(held, hash) || user != "" || password != "" || creds > 0 {
		return fmt.Errorf("%s: %s is not a card-only account holding the card: %w", what, from, store.ErrConflict)
	}
	var intoHeld []byte
	if err := tx.QueryRowContext(ctx, `SELECT id_number_hash FROM idp_accounts WHERE id=?`, into).Scan(&intoHeld); err != nil {
		return idpErr(what, err)
	}
	if len(intoHeld) > 0 {
		return fmt.Errorf("%s: account holds a card: %w", what, store.ErrConflict)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO idp_consents(account_id, client_id, scopes, granted_at)
		SELECT ?, client_id, scopes, granted_at FROM idp_consents WHERE account_id=?`, into, from); err != nil {
		return idpErr(what, err)
	}
	if err := deleteAccountTx(ctx, tx, from, at); err != nil {
		return idpErr(what, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idp_accounts SET id_number_hash=?, id_number_enc=? WHERE id=?`, hash, enc, into); err != nil {
		return idpErr(what, err)
	}
	return idpErr(what, tx.Commit())
}

// --- browser sessions of an account

func (s *identityStore) ListBrowserSessions(ctx context.Context, userID string, now time.Time) ([]store.BrowserSession, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash, amr, auth_time, expires_at FROM idp_browser_sessions
		WHERE user_id=? AND expires_at>? ORDER BY auth_time DESC`, userID, idpTS(now))
	if err != nil {
		return nil, idpErr("list browser sessions", err)
	}
	defer rows.Close()
	out := []store.BrowserSession{}
	for rows.Next() {
		b := store.BrowserSession{UserID: userID}
		var amr string
		var authTime, expires int64
		if err := rows.Scan(&b.Hash, &amr, &authTime, &expires); err != nil {
			return nil, idpErr("list browser sessions", err)
		}
		b.AMR, b.AuthTime, b.ExpiresAt = idpParseList(amr), idpFromTS(authTime), idpFromTS(expires)
		out = append(out, b)
	}
	return out, idpErr("list browser sessions", rows.Err())
}

func (s *identityStore) DeleteBrowserSessions(ctx context.Context, userID string, except []byte) error {
	q, args := `DELETE FROM idp_browser_sessions WHERE user_id=?`, []any{userID}
	if except != nil {
		q, args = q+` AND hash<>?`, append(args, except)
	}
	_, err := s.w.ExecContext(ctx, q, args...)
	return idpErr("delete browser sessions", err)
}

// --- account deletion

func (s *identityStore) DeleteAccount(ctx context.Context, id string, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := deleteAccountTx(ctx, tx, id, at); err != nil {
		return idpErr("delete account", err)
	}
	return idpErr("delete account", tx.Commit())
}

// deleteAccountTx removes the account and all the identity store keeps of it, and records its
// deletion as pending (DeleteAccount); sql.ErrNoRows when there is no such account.
func deleteAccountTx(ctx context.Context, tx *sql.Tx, id string, at time.Time) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM idp_accounts WHERE id=?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sql.ErrNoRows
	}
	for _, q := range []string{
		`DELETE FROM idp_phone_codes WHERE key IN (SELECT hash FROM idp_phones WHERE account_id=?)`,
		`DELETE FROM idp_phones WHERE account_id=?`,
		`DELETE FROM idp_passkeys WHERE account_id=?`,
		`DELETE FROM idp_links WHERE account_id=?`,
		`DELETE FROM idp_consents WHERE account_id=?`,
		`DELETE FROM idp_browser_sessions WHERE user_id=?`,
		`DELETE FROM idp_tokens WHERE user_id=?`,
		`DELETE FROM idp_device_auths WHERE user_id=?`,
		`DELETE FROM idp_guesses WHERE user_id=?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO idp_deletions(account_id, deleted_at) VALUES(?,?)
		ON CONFLICT(account_id) DO NOTHING`, id, idpTS(at))
	return err
}

func (s *identityStore) PendingDeletions(ctx context.Context) ([]store.Deletion, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT account_id, deleted_at FROM idp_deletions ORDER BY deleted_at, account_id`)
	if err != nil {
		return nil, idpErr("pending deletions", err)
	}
	defer rows.Close()
	var out []store.Deletion
	for rows.Next() {
		var d store.Deletion
		var at int64
		if err := rows.Scan(&d.AccountID, &at); err != nil {
			return nil, idpErr("pending deletions", err)
		}
		d.DeletedAt = idpFromTS(at)
		out = append(out, d)
	}
	return out, idpErr("pending deletions", rows.Err())
}

func (s *identityStore) FinishDeletion(ctx context.Context, id string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM idp_deletions WHERE account_id=?`, id)
	return idpErr("finish deletion", err)
}

// --- passkeys

const idpPasskeyCols = `id, account_id, name, credential, created_at, last_used`

func (s *identityStore) AddPasskey(ctx context.Context, k store.Passkey) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_passkeys(`+idpPasskeyCols+`) VALUES(?,?,?,?,?,?)`,
		k.ID, k.AccountID, k.Name, k.Credential, idpTS(k.CreatedAt), idpTS(k.LastUsed))
	return idpErr("add passkey", err)
}

func scanPasskey(sc idpRowScanner) (store.Passkey, error) {
	var k store.Passkey
	var created, used int64
	err := sc.Scan(&k.ID, &k.AccountID, &k.Name, &k.Credential, &created, &used)
	k.CreatedAt, k.LastUsed = idpFromTS(created), idpFromTS(used)
	return k, err
}

func (s *identityStore) GetPasskey(ctx context.Context, id []byte) (store.Passkey, error) {
	k, err := scanPasskey(s.r.QueryRowContext(ctx, `SELECT `+idpPasskeyCols+` FROM idp_passkeys WHERE id=?`, id))
	return k, idpErr("get passkey", err)
}

func (s *identityStore) ListPasskeys(ctx context.Context, accountID string) ([]store.Passkey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+idpPasskeyCols+` FROM idp_passkeys WHERE account_id=?
		ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, idpErr("list passkeys", err)
	}
	defer rows.Close()
	out := []store.Passkey{}
	for rows.Next() {
		k, err := scanPasskey(rows)
		if err != nil {
			return nil, idpErr("list passkeys", err)
		}
		out = append(out, k)
	}
	return out, idpErr("list passkeys", rows.Err())
}

func (s *identityStore) UsePasskey(ctx context.Context, id, credential []byte, at time.Time) error {
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE idp_passkeys SET credential=?, last_used=? WHERE id=?`, credential, idpTS(at), id)
		return idpAffected("use passkey", res, err)
	}, nil)
}

func (s *identityStore) DeletePasskey(ctx context.Context, accountID string, id []byte) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idp_passkeys WHERE account_id=? AND id=?`, accountID, id)
	return idpAffected("delete passkey", res, err)
}

// --- phones and codes

func (s *identityStore) SetPhone(ctx context.Context, p store.Phone) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM idp_accounts WHERE id=?`, p.AccountID).Scan(&one); err != nil {
		return idpErr("set phone", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO idp_phones(account_id, hash, enc, verified_at) VALUES(?,?,?,?)
		ON CONFLICT(account_id) DO UPDATE SET hash=excluded.hash, enc=excluded.enc, verified_at=excluded.verified_at`,
		p.AccountID, p.Hash, p.Enc, idpTS(p.VerifiedAt)); err != nil {
		return idpErr("set phone", err)
	}
	return idpErr("set phone", tx.Commit())
}

func (s *identityStore) PhoneOf(ctx context.Context, accountID string) (store.Phone, error) {
	p := store.Phone{AccountID: accountID}
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, enc, verified_at FROM idp_phones WHERE account_id=?`, accountID).
		Scan(&p.Hash, &p.Enc, &at)
	p.VerifiedAt = idpFromTS(at)
	return p, idpErr("phone", err)
}

func (s *identityStore) AccountByPhone(ctx context.Context, hash []byte) (store.Account, error) {
	return s.account(ctx, "id=(SELECT account_id FROM idp_phones WHERE hash=?)", hash)
}

func (s *identityStore) IssuePhoneCode(ctx context.Context, c store.PhoneCode, l store.PhoneCodeLimits) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var created, start int64
	var sends int
	err = tx.QueryRowContext(ctx, `SELECT created_at, window_start, sends FROM idp_phone_codes WHERE key=?`, c.Key).
		Scan(&created, &start, &sends)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return idpErr("issue phone code", err)
	}
	windowStart, n, err := l.Next(err == nil, idpFromTS(created), idpFromTS(start), sends, c.CreatedAt)
	if err != nil {
		return err
	}
	keep := max(idpTS(c.ExpiresAt), idpTS(windowStart.Add(l.Window)))
	if _, err := tx.ExecContext(ctx, `INSERT INTO idp_phone_codes(key, code_hash, created_at, expires_at, tries,
		window_start, sends, keep_until) VALUES(?,?,?,?,0,?,?,?) ON CONFLICT(key) DO UPDATE SET code_hash=excluded.code_hash,
		created_at=excluded.created_at, expires_at=excluded.expires_at, tries=0, window_start=excluded.window_start,
		sends=excluded.sends, keep_until=excluded.keep_until`,
		c.Key, c.CodeHash, idpTS(c.CreatedAt), idpTS(c.ExpiresAt), idpTS(windowStart), n, keep); err != nil {
		return idpErr("issue phone code", err)
	}
	return idpErr("issue phone code", tx.Commit())
}

func (s *identityStore) VerifyPhoneCode(ctx context.Context, key, codeHash []byte, now time.Time, maxTries int) error {
	// SET reads the row as it was: the attempt counts, and a matching code is spent with it.
	var spent bool
	err := s.w.QueryRowContext(ctx, `UPDATE idp_phone_codes SET tries=tries+1,
		code_hash=CASE WHEN code_hash=? THEN x'' ELSE code_hash END,
		expires_at=CASE WHEN code_hash=? THEN 0 ELSE expires_at END
		WHERE key=? AND expires_at>? AND tries<? RETURNING expires_at=0`,
		codeHash, codeHash, key, idpTS(now), maxTries).Scan(&spent)
	if err == nil && !spent {
		err = sql.ErrNoRows
	}
	return idpErr("verify phone code", err)
}

// --- links

func (s *identityStore) AddLink(ctx context.Context, l store.Link) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_links(connector, subject, account_id, name, created_at) VALUES(?,?,?,?,?)`,
		l.Connector, l.Subject, l.AccountID, l.Name, idpTS(l.CreatedAt))
	return idpErr("add link", err)
}

func scanLink(sc idpRowScanner) (store.Link, error) {
	var l store.Link
	var created int64
	err := sc.Scan(&l.Connector, &l.Subject, &l.AccountID, &l.Name, &created)
	l.CreatedAt = idpFromTS(created)
	return l, err
}

func (s *identityStore) GetLink(ctx context.Context, connector, subject string) (store.Link, error) {
	l, err := scanLink(s.r.QueryRowContext(ctx, `SELECT connector, subject, account_id, name, created_at FROM idp_links
		WHERE connector=? AND subject=?`, connector, subject))
	return l, idpErr("get link", err)
}

func (s *identityStore) ListLinks(ctx context.Context, accountID string) ([]store.Link, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT connector, subject, account_id, name, created_at FROM idp_links
		WHERE account_id=? ORDER BY created_at, connector, subject`, accountID)
	if err != nil {
		return nil, idpErr("list links", err)
	}
	defer rows.Close()
	out := []store.Link{}
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, idpErr("list links", err)
		}
		out = append(out, l)
	}
	return out, idpErr("list links", rows.Err())
}

func (s *identityStore) DeleteLink(ctx context.Context, accountID, connector, subject string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idp_links WHERE account_id=? AND connector=? AND subject=?`,
		accountID, connector, subject)
	return idpAffected("delete link", res, err)
}

// --- consents

func (s *identityStore) PutConsent(ctx context.Context, c store.Consent) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_consents(account_id, client_id, scopes, granted_at) VALUES(?,?,?,?)
		ON CONFLICT(account_id, client_id) DO UPDATE SET scopes=excluded.scopes, granted_at=excluded.granted_at`,
		c.AccountID, c.ClientID, idpList(c.Scopes), idpTS(c.GrantedAt))
	return idpErr("put consent", err)
}

func scanConsent(sc idpRowScanner) (store.Consent, error) {
	var c store.Consent
	var scopes string
	var at int64
	err := sc.Scan(&c.AccountID, &c.ClientID, &scopes, &at)
	c.Scopes, c.GrantedAt = idpParseList(scopes), idpFromTS(at)
	return c, err
}

func (s *identityStore) GetConsent(ctx context.Context, accountID, clientID string) (store.Consent, error) {
	c, err := scanConsent(s.r.QueryRowContext(ctx, `SELECT account_id, client_id, scopes, granted_at FROM idp_consents
		WHERE account_id=? AND client_id=?`, accountID, clientID))
	return c, idpErr("get consent", err)
}

func (s *identityStore) ListConsents(ctx context.Context, accountID string) ([]store.Consent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT account_id, client_id, scopes, granted_at FROM idp_consents
		WHERE account_id=? ORDER BY client_id`, accountID)
	if err != nil {
		return nil, idpErr("list consents", err)
	}
	defer rows.Close()
	out := []store.Consent{}
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, idpErr("list consents", err)
		}
		out = append(out, c)
	}
	return out, idpErr("list consents", rows.Err())
}

func (s *identityStore) DeleteConsent(ctx context.Context, accountID, clientID string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idp_consents WHERE account_id=? AND client_id=?`, accountID, clientID)
	return idpAffected("delete consent", res, err)
}

// --- ceremonies: in memory (logins.go)
