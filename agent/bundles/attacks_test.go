package bundles_test

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/agent/bundles/bundlestest"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta/tuftest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// The attacks of the TUF specification (§1.5.2) the agent must refuse, each against a kiosk
// that runs tax-print 1.0.0 and is asked for 1.1.0: the refused version is never activated (1.0.0
// keeps running), its status says refused and why, and a bundle.event "refused" is recorded.

// attacked sets up a kiosk running 1.0.0 with 1.1.0 published, lets attack change the
// repository, asks for 1.1.0 and checks the refusal.
func attacked(t *testing.T, attack func(repo *bundlestest.Repo, archive []byte), want string, opts ...kioskOpt) {
	t.Helper()
	repo := bundlestest.NewRepo(t)
	repo.AddBundle(manifest("1.0.0"), 20_000)
	k := newKiosk(t, repo, opts...)
	k.run()
	k.m.Want(wantV("1.0.0"))
	k.waitState("tax-print", wire.BundleActive, "1.0.0")
	archive := repo.AddBundle(manifest("1.1.0"), 20_000)
	attack(repo, archive)
	k.m.Want(wantV("1.1.0"))
	s := k.waitState("tax-print", wire.BundleRefused, "1.1.0")
	if s.Active != "1.0.0" || k.m.Active()["tax-print"].Version != "1.0.0" {
		t.Fatalf("refused, but running %+v (status %+v)", k.m.Active()["tax-print"], s)
	}
	if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(s.Error, w) }) {
		t.Fatalf("refusal %q does not say %q", s.Error, want)
	}
	var refused bool
	for _, e := range k.rec.Events(t) {
		refused = refused || (e.Event == wire.BundleRefused && e.Version == "1.1.0")
		if e.Event == wire.BundleActivated && e.Version == "1.1.0" {
			t.Fatal("the refused version was activated")
		}
	}
	if !refused {
		t.Fatal("no bundle.event refused recorded")
	}
}

func wantV(v string) wire.UpdateTargets { return want("tax-print", v) }

// Arbitrary software: the repository (or a man in the middle) serves other bytes as the target.
func TestAttackArbitraryBundle(t *testing.T) {
	attacked(t, func(repo *bundlestest.Repo, archive []byte) {
		m := manifest("1.1.0")
		m.Services = append(m.Services, "IdCard", "Scanner") // what the attacker wants of the kiosk
		evil := tuftest.Bundle(t, m, 19_000)
		evil = append(evil, make([]byte, max(0, len(archive)-len(evil)))...) // of the signed length (gzip ignores the tail)
		repo.Intercept(bundlestest.TargetPath(tufmeta.BundleTarget("tax-print", "1.1.0"), archive), evil[:len(archive)])
	}, "sha256")
}

// Arbitrary software: asked for a version that no signed target describes.
func TestAttackUnsignedTarget(t *testing.T) {
	repo := bundlestest.NewRepo(t)
	k := newKiosk(t, repo)
	k.run()
	k.m.Want(want("evil-app", "6.6.6"))
	if s := k.waitState("evil-app", wire.BundleRefused, "6.6.6"); !strings.Contains(s.Error, "not a signed target") {
		t.Fatalf("status %+v", s)
	}
}

// Rollback: the repository replays an older timestamp than the kiosk already trusts.
func TestAttackRollback(t *testing.T) {
	attacked(t, func(repo *bundlestest.Repo, _ []byte) {
		repo.ServeTimestamp(repo.TimestampVersion() - 2) // older than what 1.0.0 came with
	}, "version")
}

// Freeze: the repository keeps serving a timestamp that was valid once; the kiosk's clock is past
// its expiry (one hour).
func TestAttackFreeze(t *testing.T) {
	later := time.Now().Add(2 * time.Hour)
	frozen := false
	attacked(t, func(repo *bundlestest.Repo, _ []byte) {
		frozen = true
	}, "expired", func(_ *bundles.Config, sc *bundles.SourceConfig) {
		sc.Now = func() time.Time {
			if frozen {
				return later
			}
			return time.Now()
		}
	})
}

// Mix-and-match: snapshot and targets files of other repository states served under the names
// the timestamp and snapshot point at.
func TestAttackMixAndMatch(t *testing.T) {
	t.Run("snapshot", func(t *testing.T) {
		attacked(t, func(repo *bundlestest.Repo, _ []byte) {
			v := repo.TimestampVersion() // timestamp N points at snapshot N: serve snapshot N-1 there
			repo.Intercept(strconv.FormatInt(v, 10)+".snapshot.json", repo.Metadata(strconv.FormatInt(v-1, 10)+".snapshot.json"))
			// The timestamp gives the snapshot's length and hashes (TUF spec 5.5.2): the older one
			// fails the length check when it is a byte longer or shorter, else the hash check.
		}, "hash verification failed|length mismatch")
	})
	t.Run("targets", func(t *testing.T) {
		attacked(t, func(repo *bundlestest.Repo, _ []byte) {
			v := repo.TimestampVersion() // snapshot N points at targets N: serve targets N-1 there
			repo.Intercept(strconv.FormatInt(v, 10)+".targets.json", repo.Metadata(strconv.FormatInt(v-1, 10)+".targets.json"))
		}, "version")
	})
}

// A key that is not authorised: targets signed by a key root does not name for targets.
func TestAttackUnauthorisedKey(t *testing.T) {
	attacked(t, func(repo *bundlestest.Repo, _ []byte) {
		repo.AddBundle(manifest("1.1.1"), 1000) // a fresh targets version ...
		repo.Publish(tuftest.Key(t))            // ... then one signed by a stranger
	}, "unsigned")
}

// Endless data: metadata and a target larger than allowed.
func TestAttackEndlessData(t *testing.T) {
	t.Run("timestamp", func(t *testing.T) {
		attacked(t, func(repo *bundlestest.Repo, _ []byte) {
			repo.Intercept("timestamp.json", bytes.Repeat([]byte(" "), 4<<20))
		}, "length")
	})
	t.Run("target", func(t *testing.T) {
		attacked(t, func(repo *bundlestest.Repo, archive []byte) {
			repo.Intercept(bundlestest.TargetPath(tufmeta.BundleTarget("tax-print", "1.1.0"), archive),
				append(append([]byte{}, archive...), bytes.Repeat([]byte("x"), 8<<20)...))
		}, "endless data")
	})
}
