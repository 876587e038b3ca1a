package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/internal/sqlrow"
	"github.com/kioskfleet/kioskfleet/pkg/sqlitex"
)

// identityStore is store.Identity on the store's database (tables idp_*, migrations 0100-0199);
// Store embeds it.
type identityStore struct {
	w, r *sql.DB // the store's single writer and its readers
	// gc group-commits the writes of a login (auth requests, codes, tokens, ceremonies, passkey
	// counters, browser sessions), which many citizens make at once.
	gc *groupCommit
	// logins keeps authorization requests and ceremonies in memory (logins.go).
	logins *logins
}

var idpTS, idpFromTS = sqlrow.Nanos, sqlrow.Time

func idpList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func idpParseList(s string) []string {
	var l []string
	_ = json.Unmarshal([]byte(s), &l)
	return l
}

// idErr maps driver errors to the store's sentinels.
func idpErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case sqlitex.IsUniqueViolation(err):
		return fmt.Errorf("%s: %w", what, store.ErrExists)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func idpAffected(what string, res sql.Result, err error) error {
	if err != nil {
		return idpErr(what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// --- clients

func (s *identityStore) PutClient(ctx context.Context, c store.Client) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO idp_clients(id, doc, secret_hash) VALUES(?,?,?)
		ON CONFLICT(id) DO UPDATE SET doc=excluded.doc, secret_hash=excluded.secret_hash`, c.ID, string(doc), c.SecretHash)
	return idpErr("put client", err)
}

func idpScanClient(doc string, secret []byte) (store.Client, error) {
	var c store.Client
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		return c, fmt.Errorf("client %q: corrupt row: %w", c.ID, err)
	}
	c.SecretHash = secret
	return c, nil
}

func (s *identityStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	var doc string
	var secret []byte
	err := s.r.QueryRowContext(ctx, `SELECT doc, secret_hash FROM idp_clients WHERE id=?`, id).Scan(&doc, &secret)
	if err != nil {
		return store.Client{}, idpErr("get client", err)
	}
	return idpScanClient(doc, secret)
}

func (s *identityStore) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT doc, secret_hash FROM idp_clients ORDER BY id`)
	if err != nil {
		return nil, idpErr("list clients", err)
	}
	defer rows.Close()
	out := []store.Client{}
	for rows.Next() {
		var doc string
		var secret []byte
		if err := rows.Scan(&doc, &secret); err != nil {
			return nil, err
		}
		c, err := idpScanClient(doc, secret)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *identityStore) DeleteClient(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idp_clients WHERE id=?`, id)
	return idpAffected("delete client", res, err)
}

// --- accounts

func idpNullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func idpNullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *identityStore) CreateAccount(ctx context.Context, a store.Account) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_accounts(id, kind, username, name, password_hash, roles, regions,
		id_number_enc, id_number_hash, created_at, department) VALUES(?,?,?,?,?,?,?,?,?,?,?)`,
		a.ID, a.Kind, idpNullStr(a.Username), a.Name, a.PasswordHash, idpList(a.Roles), idpList(a.Regions),
		idpNullBytes(a.IDNumberEnc), idpNullBytes(a.IDNumberHash), idpTS(a.CreatedAt), a.Department)
	return idpErr("create account", err)
}

const idpAccountCols = `id, kind, COALESCE(username,''), name, password_hash, roles, regions, id_number_enc, id_number_hash,
	failures, last_failure, created_at, department`

func (s *identityStore) account(ctx context.Context, where string, arg any) (store.Account, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx, `SELECT `+idpAccountCols+` FROM idp_accounts WHERE `+where, arg))
	return a, idpErr("get account", err)
}

func scanAccount(sc interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var roles, regions string
	var lastFail, created int64
	err := sc.Scan(&a.ID, &a.Kind, &a.Username, &a.Name, &a.PasswordHash, &roles, &regions, &a.IDNumberEnc, &a.IDNumberHash,
		&a.Failures, &lastFail, &created, &a.Department)
	a.Roles, a.Regions, a.LastFailure, a.CreatedAt = idpParseList(roles), idpParseList(regions), idpFromTS(lastFail), idpFromTS(created)
	return a, err
}

func (s *identityStore) ListAccounts(ctx context.Context, kind string) ([]store.Account, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+idpAccountCols+` FROM idp_accounts WHERE kind=?
		ORDER BY COALESCE(username,''), id`, kind)
	if err != nil {
		return nil, idpErr("list accounts", err)
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, idpErr("list accounts", err)
		}
		out = append(out, a)
	}
	return out, idpErr("list accounts", rows.Err())
}

func (s *identityStore) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return s.account(ctx, "id=?", id)
}

func (s *identityStore) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	return s.account(ctx, "username=?", username)
}

func (s *identityStore) AccountByIDHash(ctx context.Context, h []byte) (store.Account, error) {
	return s.account(ctx, "id_number_hash=?", h)
}

func (s *identityStore) RecordLogin(ctx context.Context, id string, success bool, at time.Time) (int, error) {
	q := `UPDATE idp_accounts SET failures=0 WHERE id=? RETURNING failures`
	args := []any{id}
	if !success {
		q = `UPDATE idp_accounts SET failures=failures+1, last_failure=? WHERE id=? RETURNING failures`
		args = []any{idpTS(at), id}
	}
	var n int
	err := s.w.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, idpErr("record login", err)
}

func (s *identityStore) SetPassword(ctx context.Context, id, hash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_accounts SET password_hash=?, failures=0 WHERE id=?`, hash, id)
	return idpAffected("set password", res, err)
}

func (s *identityStore) SetRoles(ctx context.Context, id string, roles []string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_accounts SET roles=? WHERE id=?`, idpList(roles), id)
	return idpAffected("set roles", res, err)
}

func (s *identityStore) SetRegions(ctx context.Context, id string, regions []string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_accounts SET regions=? WHERE id=?`, idpList(regions), id)
	return idpAffected("set regions", res, err)
}

// SetDepartment binds a staff account to a department.
func (s *identityStore) SetDepartment(ctx context.Context, id, department string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_accounts SET department=? WHERE id=?`, department, id)
	return idpAffected("set department", res, err)
}

// --- authorization requests: in memory (logins.go)

// --- tokens

const idpTokenCols = `id, kind, hash, family_id, user_id, subject, client_id, scopes, amr, acr, auth_time,
	device_id, audience, created_at, expires_at, revoked, rotated`

// idpInsertTokens inserts tokens in one statement.
func idpInsertTokens(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, ts ...store.Token) error {
	q := `INSERT INTO idp_tokens(` + idpTokenCols + `) VALUES ` +
		strings.TrimSuffix(strings.Repeat(`(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),`, len(ts)), ",")
	args := make([]any, 0, 17*len(ts))
	for _, t := range ts {
		args = append(args, t.ID, string(t.Kind), idpNullBytes(t.Hash), t.FamilyID, t.UserID, t.Subject, t.ClientID,
			idpList(t.Scopes), idpList(t.AMR), t.ACR, idpTS(t.AuthTime), t.DeviceID, idpList(t.Audience), idpTS(t.CreatedAt),
			idpTS(t.ExpiresAt), t.Revoked, t.Rotated)
	}
	_, err := ex.ExecContext(ctx, q, args...)
	return idpErr("insert token", err)
}

func (s *identityStore) InsertTokens(ctx context.Context, ts ...store.Token) error {
	if len(ts) == 0 {
		return nil
	}
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return idpInsertTokens(ctx, tx, ts...) }, nil)
}

func (s *identityStore) token(ctx context.Context, where string, arg any) (store.Token, error) {
	var t store.Token
	var kind, scopes, amr, aud string
	var authTime, created, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT `+idpTokenCols+` FROM idp_tokens WHERE `+where, arg).Scan(
		&t.ID, &kind, &t.Hash, &t.FamilyID, &t.UserID, &t.Subject, &t.ClientID, &scopes, &amr, &t.ACR,
		&authTime, &t.DeviceID, &aud, &created, &expires, &t.Revoked, &t.Rotated)
	if err != nil {
		return t, idpErr("get token", err)
	}
	t.Kind, t.Scopes, t.AMR, t.Audience = store.TokenKind(kind), idpParseList(scopes), idpParseList(amr), idpParseList(aud)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = idpFromTS(authTime), idpFromTS(created), idpFromTS(expires)
	return t, nil
}

func (s *identityStore) GetToken(ctx context.Context, id string) (store.Token, error) {
	return s.token(ctx, "id=?", id)
}

func (s *identityStore) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	return s.token(ctx, "hash=?", h)
}

// RotateRefresh is group-committed (groupcommit.go): one fsync for many concurrent rotations.
func (s *identityStore) RotateRefresh(ctx context.Context, oldID string, at time.Time, ts ...store.Token) error {
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return rotateOne(ctx, tx, oldID, ts) },
		func(err error) bool { return errors.Is(err, store.ErrTokenReused) }) // the family stays revoked
}

func rotateOne(ctx context.Context, tx *sql.Tx, oldID string, ts []store.Token) error {
	var family string
	err := tx.QueryRowContext(ctx, `UPDATE idp_tokens SET rotated=1 WHERE id=? AND kind='refresh' AND rotated=0
		AND revoked=0 RETURNING family_id`, oldID).Scan(&family)
	if errors.Is(err, sql.ErrNoRows) {
		// Rotated or revoked before: a reuse. Revoke the family.
		if err := tx.QueryRowContext(ctx, `SELECT family_id FROM idp_tokens WHERE id=?`, oldID).Scan(&family); err != nil {
			return idpErr("rotate refresh", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE idp_tokens SET revoked=1 WHERE family_id=?`, family); err != nil {
			return idpErr("rotate refresh", err)
		}
		return store.ErrTokenReused
	}
	if err != nil {
		return idpErr("rotate refresh", err)
	}
	if len(ts) > 0 {
		return idpInsertTokens(ctx, tx, ts...)
	}
	return nil
}

func (s *identityStore) RevokeFamily(ctx context.Context, familyID string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE idp_tokens SET revoked=1 WHERE family_id=?`, familyID)
	return idpErr("revoke family", err)
}

func (s *identityStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_tokens SET revoked=1 WHERE id=?`, id)
	return idpAffected("revoke token", res, err)
}

func (s *identityStore) RevokeSubject(ctx context.Context, clientID, subject string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE idp_tokens SET revoked=1 WHERE client_id=? AND subject=?`, clientID, subject)
	return idpErr("revoke subject", err)
}

func (s *identityStore) ListGrants(ctx context.Context, userID string, now time.Time) ([]store.Grant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT family_id, client_id, device_id, MIN(amr), MIN(created_at), MAX(expires_at)
		FROM idp_tokens WHERE user_id=? AND revoked=0 AND expires_at>?
		GROUP BY family_id ORDER BY MIN(created_at) DESC`, userID, idpTS(now))
	if err != nil {
		return nil, idpErr("list grants", err)
	}
	defer rows.Close()
	out := []store.Grant{}
	for rows.Next() {
		var g store.Grant
		var amr string
		var created, expires int64
		if err := rows.Scan(&g.FamilyID, &g.ClientID, &g.DeviceID, &amr, &created, &expires); err != nil {
			return nil, err
		}
		g.AMR, g.CreatedAt, g.ExpiresAt = idpParseList(amr), idpFromTS(created), idpFromTS(expires)
		out = append(out, g)
	}
	return out, rows.Err()
}

// --- device authorizations

const idpDeviceCols = `code_hash, user_code, client_id, scopes, kiosk_id, audience, created_at, expires_at,
	interval_ns, last_poll, state, user_id, subject, amr, auth_time`

func (s *identityStore) CreateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_device_auths(`+idpDeviceCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		d.CodeHash, d.UserCode, d.ClientID, idpList(d.Scopes), d.KioskID, idpList(d.Resources), idpTS(d.CreatedAt), idpTS(d.ExpiresAt),
		int64(d.Interval), idpTS(d.LastPoll), d.State, d.UserID, d.Subject, idpList(d.AMR), idpTS(d.AuthTime))
	return idpErr("create device auth", err)
}

type idpRowScanner interface{ Scan(...any) error }

func idpScanDeviceAuth(r idpRowScanner) (store.DeviceAuth, error) {
	var d store.DeviceAuth
	var scopes, aud, amr string
	var created, expires, interval, lastPoll, authTime int64
	err := r.Scan(&d.CodeHash, &d.UserCode, &d.ClientID, &scopes, &d.KioskID, &aud, &created, &expires, &interval,
		&lastPoll, &d.State, &d.UserID, &d.Subject, &amr, &authTime)
	if err != nil {
		return d, idpErr("device auth", err)
	}
	d.Scopes, d.Resources, d.AMR = idpParseList(scopes), idpParseList(aud), idpParseList(amr)
	d.CreatedAt, d.ExpiresAt, d.Interval = idpFromTS(created), idpFromTS(expires), time.Duration(interval)
	d.LastPoll, d.AuthTime = idpFromTS(lastPoll), idpFromTS(authTime)
	return d, nil
}

func (s *identityStore) DeviceAuthByUserCode(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return idpScanDeviceAuth(s.r.QueryRowContext(ctx, `SELECT `+idpDeviceCols+` FROM idp_device_auths WHERE user_code=?`, userCode))
}

func (s *identityStore) PollDeviceAuth(ctx context.Context, clientID string, codeHash []byte, now time.Time) (store.DeviceAuth, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DeviceAuth{}, false, err
	}
	defer tx.Rollback()
	d, err := idpScanDeviceAuth(tx.QueryRowContext(ctx, `SELECT `+idpDeviceCols+` FROM idp_device_auths
		WHERE code_hash=? AND client_id=?`, codeHash, clientID))
	if err != nil {
		return d, false, err
	}
	slow := !d.LastPoll.IsZero() && now.Sub(d.LastPoll) < d.Interval
	if slow {
		d.Interval += 5 * time.Second // RFC 8628 §3.5: slow_down adds 5 seconds to the interval
	}
	state := d.State
	if d.State == store.DeviceAuthApproved && !slow {
		state = store.DeviceAuthIssued
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idp_device_auths SET last_poll=?, interval_ns=?, state=? WHERE code_hash=?`,
		idpTS(now), int64(d.Interval), state, codeHash); err != nil {
		return d, false, idpErr("poll device auth", err)
	}
	if err := tx.Commit(); err != nil {
		return d, false, err
	}
	return d, slow, nil
}

func (s *identityStore) DecideDeviceAuth(ctx context.Context, userCode string, d store.DeviceAuth, now time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE idp_device_auths SET state=?, user_id=?, subject=?, amr=?, auth_time=?
		WHERE user_code=? AND state=? AND expires_at>?`, d.State, d.UserID, d.Subject, idpList(d.AMR),
		idpTS(d.AuthTime), userCode, store.DeviceAuthPending, idpTS(now))
	return idpAffected("decide device auth", res, err)
}

// --- keys and assertions

func (s *identityStore) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	use := cmp.Or(k.Use, store.KeyUseSig)
	if _, err := tx.ExecContext(ctx, `UPDATE idp_signing_keys SET retired_at=? WHERE retired_at=0 AND key_use=?`,
		idpTS(k.CreatedAt), use); err != nil {
		return idpErr("add signing key", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO idp_signing_keys(id, alg, key_use, private_enc, created_at, retired_at)
		VALUES(?,?,?,?,?,0)`, k.ID, k.Alg, use, k.PrivateEnc, idpTS(k.CreatedAt)); err != nil {
		return idpErr("add signing key", err)
	}
	return tx.Commit()
}

func (s *identityStore) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, alg, key_use, private_enc, created_at, retired_at FROM idp_signing_keys
		ORDER BY created_at DESC`)
	if err != nil {
		return nil, idpErr("list signing keys", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created, retired int64
		if err := rows.Scan(&k.ID, &k.Alg, &k.Use, &k.PrivateEnc, &created, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RetiredAt = idpFromTS(created), idpFromTS(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *identityStore) DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM idp_signing_keys WHERE retired_at>0 AND retired_at<?`, idpTS(retiredBefore))
	return idpErr("delete signing keys", err)
}

func (s *identityStore) UseAssertion(ctx context.Context, id string, exp time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO idp_assertions(id, expires_at) VALUES(?,?)`, id, idpTS(exp))
	return idpErr("use assertion", err)
}

// --- browser sessions and purge

func (s *identityStore) CreateBrowserSession(ctx context.Context, b store.BrowserSession) error {
	return s.gc.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO idp_browser_sessions(hash, user_id, amr, auth_time, expires_at)
		VALUES(?,?,?,?,?)`, b.Hash, b.UserID, idpList(b.AMR), idpTS(b.AuthTime), idpTS(b.ExpiresAt))
		return idpErr("create browser session", err)
	}, nil)
}

func (s *identityStore) GetBrowserSession(ctx context.Context, h []byte) (store.BrowserSession, error) {
	b := store.BrowserSession{Hash: h}
	var amr string
	var authTime, expires int64
	err := s.r.QueryRowContext(ctx, `SELECT user_id, amr, auth_time, expires_at FROM idp_browser_sessions
		WHERE hash=?`, h).Scan(&b.UserID, &amr, &authTime, &expires)
	if err != nil {
		return b, idpErr("get browser session", err)
	}
	b.AMR, b.AuthTime, b.ExpiresAt = idpParseList(amr), idpFromTS(authTime), idpFromTS(expires)
	return b, nil
}

func (s *identityStore) DeleteBrowserSession(ctx context.Context, h []byte) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM idp_browser_sessions WHERE hash=?`, h)
	return idpErr("delete browser session", err)
}

// CountGuess counts a wrong user code in the account's window.
func (s *identityStore) CountGuess(ctx context.Context, userID string, wrong bool, now time.Time, window time.Duration) (int, error) {
	var n int
	var err error
	if !wrong {
		err = s.r.QueryRowContext(ctx, `SELECT coalesce((SELECT n FROM idp_guesses WHERE user_id=? AND since>=?), 0)`,
			userID, idpTS(now.Add(-window))).Scan(&n)
	} else {
		err = s.w.QueryRowContext(ctx, `INSERT INTO idp_guesses(user_id,n,since) VALUES(?1,1,?2)
			ON CONFLICT(user_id) DO UPDATE SET n = CASE WHEN since<?3 THEN 1 ELSE n+1 END,
				since = CASE WHEN since<?3 THEN ?2 ELSE since END
			RETURNING n`, userID, idpTS(now), idpTS(now.Add(-window))).Scan(&n)
	}
	if err != nil {
		return 0, idpErr("count guess", err)
	}
	return n, nil
}

func (s *identityStore) Purge(ctx context.Context, now time.Time) error {
	s.logins.purge(now)
	t := idpTS(now)
	for _, q := range []string{
		`DELETE FROM idp_auth_requests WHERE expires_at<?`,
		`DELETE FROM idp_device_auths WHERE expires_at<?`,
		`DELETE FROM idp_browser_sessions WHERE expires_at<?`,
		`DELETE FROM idp_assertions WHERE expires_at<?`,
		`DELETE FROM idp_tokens WHERE expires_at<?`,
		`DELETE FROM idp_ceremonies WHERE expires_at<?`,
		`DELETE FROM idp_phone_codes WHERE keep_until<?`,
		`DELETE FROM idp_guesses WHERE since<?`,
	} {
		if _, err := s.w.ExecContext(ctx, q, t); err != nil {
			return idpErr("purge", err)
		}
	}
	return nil
}
