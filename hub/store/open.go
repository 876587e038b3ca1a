package store

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// An Opener opens a backend's store at url (scheme included), applying pending migrations.
type Opener func(ctx context.Context, url string, log *slog.Logger) (Store, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a backend available to Open under a URL scheme. A backend registers itself from
// init, as database/sql drivers do: hub/store/sqlite as "sqlite", hub/store/postgres as
// "postgres". Register panics if the scheme is taken.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[scheme]; dup || open == nil {
		panic("store: Register " + scheme + " twice or without an opener")
	}
	openers[scheme] = open
}

// Open opens the store at url with the backend registered for its scheme, for example
// "sqlite:var/hub/hub.db" (a file path after the colon); the program must import the backend.
func Open(ctx context.Context, url string, log *slog.Logger) (Store, error) {
	open, err := opener(url)
	if err != nil {
		return nil, err
	}
	return open(ctx, url, log)
}

// CheckURL reports what is wrong with a store URL without opening it: no scheme, nothing after
// it, or no backend registered for it.
func CheckURL(url string) error {
	_, err := opener(url)
	return err
}

var schemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`) // RFC 3986 §3.1, lower case

func opener(url string) (Opener, error) {
	scheme, rest, ok := strings.Cut(url, ":")
	if !ok || !schemeRE.MatchString(scheme) || rest == "" {
		return nil, fmt.Errorf("store url %q: want scheme:location, e.g. sqlite:var/hub/hub.db", url)
	}
	openersMu.RLock()
	defer openersMu.RUnlock()
	if open, ok := openers[scheme]; ok {
		return open, nil
	}
	have := make([]string, 0, len(openers))
	for s := range openers {
		have = append(have, s)
	}
	slices.Sort(have)
	return nil, fmt.Errorf("store url %q: no backend for %q (have: %s)", url, scheme, strings.Join(have, ", "))
}
