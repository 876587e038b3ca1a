package postgres

import "testing"

// SynchronousCommit is the synchronous_commit setting of the store's sessions.
func SynchronousCommit(t *testing.T, s *Store) string {
	t.Helper()
	var v string
	if err := s.pool.QueryRow(t.Context(), `SHOW synchronous_commit`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
