package web

import "time"

// eachSession calls f with each session, locked.
func eachSession(s *Server, f func(*session)) {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	for _, sess := range s.sessions.m {
		sess.mu.Lock()
		f(sess)
		sess.mu.Unlock()
	}
}

// AccessTokens returns every session's access token.
func AccessTokens(s *Server) []string {
	var out []string
	eachSession(s, func(sess *session) { out = append(out, sess.tok.AccessToken) })
	return out
}

// ExpireAccessTokens makes every session's access token look expired, as after a quarter of an
// hour of a shift: the next request must refresh it at the hub. It returns the tokens it expired.
func ExpireAccessTokens(s *Server) []string {
	old := AccessTokens(s)
	eachSession(s, func(sess *session) { sess.tok.Expiry = time.Now().Add(-time.Second) })
	return old
}

// RefreshTokens returns every session's refresh token.
func RefreshTokens(s *Server) []string {
	var out []string
	eachSession(s, func(sess *session) { out = append(out, sess.tok.RefreshToken) })
	return out
}
