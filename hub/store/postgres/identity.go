package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// The identity domain (store.Identity) on tables idp_*, migrations 0100-0199. Everything an
// OpenID Provider keeps is here, so any replica can continue what another began: a code issued by
// one is redeemed at another, a refresh token rotates wherever it is presented, and a rotation
// races another on the token's row, so reuse is found across replicas.

// idErr maps pgx errors to the store's sentinels.
func idErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case sqlState(err) == uniqueViolation:
		return fmt.Errorf("%s: %w", what, store.ErrExists)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// idAffected is idErr for a statement that must touch a row.
func idAffected(what string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return idErr(what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// list stores a nil list as an empty array.
func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// nullString stores "" as NULL (unique columns that many rows leave empty).
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// --- clients

func (s *Store) PutClient(ctx context.Context, c store.Client) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO idp_clients (id, doc, secret_hash) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, secret_hash = excluded.secret_hash`, c.ID, doc, orNull(c.SecretHash))
	return idErr("put client", err)
}

func scanClient(row pgx.Row) (store.Client, error) {
	var c store.Client
	var doc, secret []byte
	if err := row.Scan(&doc, &secret); err != nil {
		return c, err
	}
	if err := json.Unmarshal(doc, &c); err != nil {
		return c, fmt.Errorf("client: corrupt row: %w", err)
	}
	c.SecretHash = secret
	return c, nil
}

func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT doc, secret_hash FROM idp_clients WHERE id = $1`, id))
	return c, idErr("get client", err)
}

func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	rows, _ := s.pool.Query(ctx, `SELECT doc, secret_hash FROM idp_clients ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Client, error) { return scanClient(r) })
	if out == nil {
		out = []store.Client{}
	}
	return out, idErr("list clients", err)
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idp_clients WHERE id = $1`, id)
	return idAffected("delete client", tag, err)
}

// --- accounts

func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_accounts (id, kind, username, name, password_hash, roles, regions,
		id_number_enc, id_number_hash, created_at, department) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.ID, a.Kind, nullString(a.Username), a.Name, a.PasswordHash, list(a.Roles), list(a.Regions),
		orNull(a.IDNumberEnc), orNull(a.IDNumberHash), ts(a.CreatedAt), a.Department)
	return idErr("create account", err)
}

const accountCols = `id, kind, coalesce(username, ''), name, password_hash, roles, regions, id_number_enc,
	id_number_hash, failures, last_failure, created_at, department`

func (s *Store) account(ctx context.Context, where string, arg any) (store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM idp_accounts WHERE `+where, arg))
	if err != nil {
		return a, idErr("get account", err)
	}
	return a, nil
}

func scanAccount(r pgx.Row) (store.Account, error) {
	var a store.Account
	var lastFail, created int64
	err := r.Scan(&a.ID, &a.Kind, &a.Username, &a.Name, &a.PasswordHash, &a.Roles, &a.Regions, &a.IDNumberEnc, &a.IDNumberHash,
		&a.Failures, &lastFail, &created, &a.Department)
	a.LastFailure, a.CreatedAt = fromTS(lastFail), fromTS(created)
	return a, err
}

func (s *Store) ListAccounts(ctx context.Context, kind string) ([]store.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+accountCols+` FROM idp_accounts WHERE kind = $1
		ORDER BY coalesce(username, '') COLLATE "C", id COLLATE "C"`, kind)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Account, error) { return scanAccount(r) })
	return out, idErr("list accounts", err)
}

func (s *Store) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return s.account(ctx, "id = $1", id)
}

func (s *Store) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	return s.account(ctx, "username = $1", username)
}

func (s *Store) AccountByIDHash(ctx context.Context, h []byte) (store.Account, error) {
	return s.account(ctx, "id_number_hash = $1", h)
}

func (s *Store) RecordLogin(ctx context.Context, id string, success bool, at time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `UPDATE idp_accounts SET
			failures = CASE WHEN $2 THEN 0 ELSE failures + 1 END,
			last_failure = CASE WHEN $2 THEN last_failure ELSE $3 END
		WHERE id = $1 RETURNING failures`, id, success, ts(at)).Scan(&n)
	return n, idErr("record login", err)
}

func (s *Store) SetPassword(ctx context.Context, id, hash string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_accounts SET password_hash = $2, failures = 0 WHERE id = $1`, id, hash)
	return idAffected("set password", tag, err)
}

func (s *Store) SetRoles(ctx context.Context, id string, roles []string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_accounts SET roles = $2 WHERE id = $1`, id, list(roles))
	return idAffected("set roles", tag, err)
}

func (s *Store) SetRegions(ctx context.Context, id string, regions []string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_accounts SET regions = $2 WHERE id = $1`, id, list(regions))
	return idAffected("set regions", tag, err)
}

// SetDepartment binds a staff account to a department.
func (s *Store) SetDepartment(ctx context.Context, id, department string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_accounts SET department = $2 WHERE id = $1`, id, department)
	return idAffected("set department", tag, err)
}

// --- authorization requests (the whole request as JSON; code hash and state as columns)

// authRequestDoc is an authorization request as stored in doc.
type authRequestDoc struct {
	store.AuthRequest
	CodeHash []byte `json:"-"`
	Consumed bool   `json:"-"`
}

func (s *Store) SaveAuthRequest(ctx context.Context, a store.AuthRequest) error {
	doc, err := json.Marshal(authRequestDoc{AuthRequest: a})
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO idp_auth_requests (id, code_hash, consumed, expires_at, doc)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET code_hash = excluded.code_hash, doc = excluded.doc,
		expires_at = excluded.expires_at WHERE NOT idp_auth_requests.consumed`,
		a.ID, orNull(a.CodeHash), a.Consumed, ts(a.ExpiresAt), doc)
	return idErr("save auth request", err)
}

func scanAuthRequest(row pgx.Row) (store.AuthRequest, error) {
	var d authRequestDoc
	var doc, code []byte
	var consumed bool
	if err := row.Scan(&doc, &code, &consumed); err != nil {
		return store.AuthRequest{}, err
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return store.AuthRequest{}, fmt.Errorf("auth request: corrupt row: %w", err)
	}
	a := d.AuthRequest
	a.CodeHash, a.Consumed = code, consumed
	return a, nil
}

func (s *Store) GetAuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	a, err := scanAuthRequest(s.pool.QueryRow(ctx, `SELECT doc, code_hash, consumed FROM idp_auth_requests WHERE id = $1`, id))
	return a, idErr("get auth request", err)
}

// ConsumeCode marks the request consumed in one statement: of concurrent redeems of one code, on
// any replicas, the first wins and the others see the reuse.
func (s *Store) ConsumeCode(ctx context.Context, codeHash []byte) (store.AuthRequest, error) {
	a, err := scanAuthRequest(s.pool.QueryRow(ctx, `UPDATE idp_auth_requests SET consumed = true
		WHERE code_hash = $1 AND NOT consumed RETURNING doc, code_hash, consumed`, codeHash))
	if !errors.Is(err, pgx.ErrNoRows) {
		return a, idErr("consume code", err)
	}
	a, err = scanAuthRequest(s.pool.QueryRow(ctx, `SELECT doc, code_hash, consumed FROM idp_auth_requests WHERE code_hash = $1`, codeHash))
	if err != nil {
		return a, idErr("consume code", err)
	}
	return a, store.ErrCodeReused
}

func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idp_auth_requests WHERE id = $1 AND NOT consumed`, id)
	return idErr("delete auth request", err)
}

// --- tokens

const tokenCols = `id, kind, hash, family_id, user_id, subject, client_id, scopes, amr, acr, auth_time,
	device_id, audience, created_at, expires_at, revoked, rotated`

// tokenTypes are the types of tokenCols, to cast parameters where PostgreSQL cannot infer them.
var tokenTypes = [tokenNCols]string{"text", "text", "bytea", "text", "text", "text", "text", "text[]", "text[]", "text",
	"bigint", "text", "text[]", "bigint", "bigint", "boolean", "boolean"}

// tokenNCols is the number of tokenCols.
const tokenNCols = 17

// tokenRows writes toks as rows of parameters from $first on (cast when cast is set, as a SELECT
// list needs), joined by sep, and returns their arguments.
func tokenRows(q *strings.Builder, first int, cast bool, sep string, toks []store.Token) []any {
	args := make([]any, 0, tokenNCols*len(toks))
	for i, t := range toks {
		if i > 0 {
			q.WriteString(sep)
		}
		for j := range tokenNCols {
			if j > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(q, "$%d", first+tokenNCols*i+j)
			if cast {
				q.WriteString("::" + tokenTypes[j])
			}
		}
		args = append(args, t.ID, string(t.Kind), orNull(t.Hash), t.FamilyID, t.UserID, t.Subject, t.ClientID,
			list(t.Scopes), list(t.AMR), t.ACR, ts(t.AuthTime), t.DeviceID, list(t.Audience), ts(t.CreatedAt),
			ts(t.ExpiresAt), t.Revoked, t.Rotated)
	}
	return args
}

// InsertTokens inserts in one statement, group-committed with the other token writes
// (groupcommit.go).
func (s *Store) InsertTokens(ctx context.Context, toks ...store.Token) error {
	if len(toks) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO idp_tokens (` + tokenCols + `) VALUES (`)
	args := tokenRows(&q, 1, false, "), (", toks)
	q.WriteByte(')')
	_, err := s.writeTokens(ctx, q.String(), args)
	return idErr("insert token", err)
}

func (s *Store) token(ctx context.Context, where string, arg any) (store.Token, error) {
	var t store.Token
	var kind string
	var authTime, created, expires int64
	err := s.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM idp_tokens WHERE `+where, arg).Scan(
		&t.ID, &kind, &t.Hash, &t.FamilyID, &t.UserID, &t.Subject, &t.ClientID, &t.Scopes, &t.AMR, &t.ACR,
		&authTime, &t.DeviceID, &t.Audience, &created, &expires, &t.Revoked, &t.Rotated)
	if err != nil {
		return t, idErr("get token", err)
	}
	t.Kind = store.TokenKind(kind)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromTS(authTime), fromTS(created), fromTS(expires)
	return t, nil
}

func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	return s.token(ctx, "id = $1", id)
}

func (s *Store) TokenByHash(ctx context.Context, h []byte) (store.Token, error) {
	return s.token(ctx, "hash = $1", h)
}

// RotateRefresh rotates in one statement, group-committed with the other token writes
// (groupcommit.go): the UPDATE takes the old token's row and the INSERT of the new tokens happens
// only if the UPDATE took it, so the statement's row count says whether it rotated. Of concurrent
// rotations of one token (a replayed refresh token, on any replica) the first wins; the others,
// finding it rotated once they get the row, insert nothing and then revoke the family.
func (s *Store) RotateRefresh(ctx context.Context, oldID string, at time.Time, toks ...store.Token) error {
	const update = `UPDATE idp_tokens SET rotated = true WHERE id = $1 AND kind = 'refresh' AND NOT rotated AND NOT revoked`
	q := update
	args := []any{oldID}
	if len(toks) > 0 {
		var b strings.Builder
		b.WriteString(`WITH old AS (` + update + ` RETURNING 1) INSERT INTO idp_tokens (` + tokenCols + `) SELECT `)
		args = append(args, tokenRows(&b, 2, true, " WHERE EXISTS (SELECT FROM old) UNION ALL SELECT ", toks)...)
		b.WriteString(` WHERE EXISTS (SELECT FROM old)`)
		q = b.String()
	}
	tag, err := s.writeTokens(ctx, q, args)
	if err != nil {
		return idErr("rotate refresh", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	// Rotated or revoked before: a reuse. Revoke the family.
	err = s.retry(ctx, func() error { // a deadlock victim, with another replica's rotation: again
		tag, err = s.pool.Exec(ctx, `UPDATE idp_tokens SET revoked = true
			WHERE family_id = (SELECT family_id FROM idp_tokens WHERE id = $1)`, oldID)
		return err
	})
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows // no such token
	}
	if err != nil {
		return idErr("rotate refresh", err)
	}
	return store.ErrTokenReused
}

func (s *Store) RevokeFamily(ctx context.Context, familyID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE idp_tokens SET revoked = true WHERE family_id = $1`, familyID)
	return idErr("revoke family", err)
}

func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_tokens SET revoked = true WHERE id = $1`, id)
	return idAffected("revoke token", tag, err)
}

func (s *Store) RevokeSubject(ctx context.Context, clientID, subject string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE idp_tokens SET revoked = true WHERE client_id = $1 AND subject = $2`, clientID, subject)
	return idErr("revoke subject", err)
}

func (s *Store) ListGrants(ctx context.Context, userID string, now time.Time) ([]store.Grant, error) {
	rows, _ := s.pool.Query(ctx, `SELECT family_id, min(client_id), min(device_id), (array_agg(amr ORDER BY created_at))[1],
			min(created_at), max(expires_at)
		FROM idp_tokens WHERE user_id = $1 AND NOT revoked AND expires_at > $2
		GROUP BY family_id ORDER BY min(created_at) DESC`, userID, ts(now))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Grant, error) {
		var g store.Grant
		var created, expires int64
		err := r.Scan(&g.FamilyID, &g.ClientID, &g.DeviceID, &g.AMR, &created, &expires)
		g.CreatedAt, g.ExpiresAt = fromTS(created), fromTS(expires)
		return g, err
	})
	if out == nil {
		out = []store.Grant{}
	}
	return out, idErr("list grants", err)
}

// --- device authorizations

const deviceAuthCols = `code_hash, user_code, client_id, scopes, kiosk_id, audience, created_at, expires_at,
	interval_ns, last_poll, state, user_id, subject, amr, auth_time`

func (s *Store) CreateDeviceAuth(ctx context.Context, d store.DeviceAuth) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_device_auths (`+deviceAuthCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		d.CodeHash, d.UserCode, d.ClientID, list(d.Scopes), d.KioskID, list(d.Resources), ts(d.CreatedAt), ts(d.ExpiresAt),
		int64(d.Interval), ts(d.LastPoll), d.State, d.UserID, d.Subject, list(d.AMR), ts(d.AuthTime))
	return idErr("create device auth", err)
}

func scanDeviceAuth(row pgx.Row) (store.DeviceAuth, error) {
	var d store.DeviceAuth
	var created, expires, interval, lastPoll, authTime int64
	err := row.Scan(&d.CodeHash, &d.UserCode, &d.ClientID, &d.Scopes, &d.KioskID, &d.Resources, &created, &expires, &interval,
		&lastPoll, &d.State, &d.UserID, &d.Subject, &d.AMR, &authTime)
	if err != nil {
		return d, idErr("device auth", err)
	}
	d.CreatedAt, d.ExpiresAt, d.Interval = fromTS(created), fromTS(expires), time.Duration(interval)
	d.LastPoll, d.AuthTime = fromTS(lastPoll), fromTS(authTime)
	return d, nil
}

func (s *Store) DeviceAuthByUserCode(ctx context.Context, userCode string) (store.DeviceAuth, error) {
	return scanDeviceAuth(s.pool.QueryRow(ctx, `SELECT `+deviceAuthCols+` FROM idp_device_auths WHERE user_code = $1`, userCode))
}

// PollDeviceAuth reads the request with its row locked, so that concurrent polls (on any
// replicas) take turns: an approved request is issued once.
func (s *Store) PollDeviceAuth(ctx context.Context, clientID string, codeHash []byte, now time.Time) (store.DeviceAuth, bool, error) {
	var d store.DeviceAuth
	var slow bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = scanDeviceAuth(tx.QueryRow(ctx, `SELECT `+deviceAuthCols+` FROM idp_device_auths
			WHERE code_hash = $1 AND client_id = $2 FOR UPDATE`, codeHash, clientID))
		if err != nil {
			return err
		}
		slow = !d.LastPoll.IsZero() && now.Sub(d.LastPoll) < d.Interval
		if slow {
			d.Interval += 5 * time.Second // RFC 8628 §3.5: slow_down adds 5 seconds to the interval
		}
		state := d.State
		if d.State == store.DeviceAuthApproved && !slow {
			state = store.DeviceAuthIssued
		}
		_, err = tx.Exec(ctx, `UPDATE idp_device_auths SET last_poll = $2, interval_ns = $3, state = $4 WHERE code_hash = $1`,
			codeHash, ts(now), int64(d.Interval), state)
		return idErr("poll device auth", err)
	})
	return d, slow, err
}

func (s *Store) DecideDeviceAuth(ctx context.Context, userCode string, d store.DeviceAuth, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE idp_device_auths SET state = $2, user_id = $3, subject = $4, amr = $5, auth_time = $6
		WHERE user_code = $1 AND state = $7 AND expires_at > $8`, userCode, d.State, d.UserID, d.Subject, list(d.AMR),
		ts(d.AuthTime), store.DeviceAuthPending, ts(now))
	return idAffected("decide device auth", tag, err)
}

// --- keys and assertions

func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	return idErr("add signing key", s.tx(ctx, func(tx pgx.Tx) error {
		use := cmp.Or(k.Use, store.KeyUseSig)
		if _, err := tx.Exec(ctx, `UPDATE idp_signing_keys SET retired_at = $1 WHERE retired_at = 0 AND key_use = $2`,
			ts(k.CreatedAt), use); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO idp_signing_keys (id, alg, key_use, private_enc, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.ID, k.Alg, use, k.PrivateEnc, ts(k.CreatedAt))
		return err
	}))
}

func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, alg, key_use, private_enc, created_at, retired_at FROM idp_signing_keys ORDER BY created_at DESC`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SigningKey, error) {
		var k store.SigningKey
		var created, retired int64
		err := r.Scan(&k.ID, &k.Alg, &k.Use, &k.PrivateEnc, &created, &retired)
		k.CreatedAt, k.RetiredAt = fromTS(created), fromTS(retired)
		return k, err
	})
	return out, idErr("list signing keys", err)
}

func (s *Store) DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idp_signing_keys WHERE retired_at > 0 AND retired_at < $1`, ts(retiredBefore))
	return idErr("delete signing keys", err)
}

func (s *Store) UseAssertion(ctx context.Context, id string, exp time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_assertions (id, expires_at) VALUES ($1, $2)`, []byte(id), ts(exp))
	return idErr("use assertion", err)
}

// --- browser sessions and purge

func (s *Store) CreateBrowserSession(ctx context.Context, b store.BrowserSession) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO idp_browser_sessions (hash, user_id, amr, auth_time, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, b.Hash, b.UserID, list(b.AMR), ts(b.AuthTime), ts(b.ExpiresAt))
	return idErr("create browser session", err)
}

func (s *Store) GetBrowserSession(ctx context.Context, h []byte) (store.BrowserSession, error) {
	b := store.BrowserSession{Hash: h}
	var authTime, expires int64
	err := s.pool.QueryRow(ctx, `SELECT user_id, amr, auth_time, expires_at FROM idp_browser_sessions WHERE hash = $1`, h).
		Scan(&b.UserID, &b.AMR, &authTime, &expires)
	if err != nil {
		return b, idErr("get browser session", err)
	}
	b.AuthTime, b.ExpiresAt = fromTS(authTime), fromTS(expires)
	return b, nil
}

func (s *Store) DeleteBrowserSession(ctx context.Context, h []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idp_browser_sessions WHERE hash = $1`, h)
	return idErr("delete browser session", err)
}

// CountGuess counts a wrong user code in the account's window, in one statement: concurrent
// guesses on any replica all count.
func (s *Store) CountGuess(ctx context.Context, userID string, wrong bool, now time.Time, window time.Duration) (int, error) {
	var n int
	var err error
	if !wrong {
		err = s.pool.QueryRow(ctx, `SELECT coalesce((SELECT n FROM idp_guesses WHERE user_id = $1 AND since >= $2), 0)`,
			userID, ts(now.Add(-window))).Scan(&n)
	} else {
		err = s.pool.QueryRow(ctx, `INSERT INTO idp_guesses AS g (user_id, n, since) VALUES ($1, 1, $2)
			ON CONFLICT (user_id) DO UPDATE SET
				n = CASE WHEN g.since < $3 THEN 1 ELSE g.n + 1 END,
				since = CASE WHEN g.since < $3 THEN $2 ELSE g.since END
			RETURNING n`, userID, ts(now), ts(now.Add(-window))).Scan(&n)
	}
	return n, idErr("count guess", err)
}

func (s *Store) Purge(ctx context.Context, now time.Time) error {
	b := &pgx.Batch{}
	for _, table := range []string{"idp_auth_requests", "idp_device_auths", "idp_browser_sessions", "idp_assertions", "idp_tokens",
		"idp_ceremonies"} {
		b.Queue(`DELETE FROM `+table+` WHERE expires_at < $1`, ts(now))
	}
	b.Queue(`DELETE FROM idp_phone_codes WHERE keep_until < $1`, ts(now))
	b.Queue(`DELETE FROM idp_guesses WHERE since < $1`, ts(now))
	return idErr("purge", s.pool.SendBatch(ctx, b).Close())
}
