package storetest

import (
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

func testSites(t *testing.T, s store.Devices) {
	ctx := t.Context()
	a := store.Site{ID: "s-b", Name: "Futian hall", Region: "440304", Address: "1 Road"}
	b := store.Site{ID: "s-a", Name: "Nanshan hall", Region: "440305"}
	for _, x := range []store.Site{a, b} {
		if err := s.CreateSite(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "duplicate site", s.CreateSite(ctx, a), store.ErrExists)
	wantErr(t, "site without id", s.CreateSite(ctx, store.Site{Name: "x"}), store.ErrInvalid)
	got, err := s.GetSite(ctx, "s-b")
	if err != nil || got != a {
		t.Fatalf("GetSite = %+v, %v; want %+v", got, err, a)
	}
	_, err = s.GetSite(ctx, "nope")
	wantErr(t, "GetSite unknown", err, store.ErrNotFound)
	all, err := s.ListSites(ctx)
	if err != nil || !slices.Equal(all, []store.Site{b, a}) {
		t.Fatalf("ListSites = %+v, %v; want by id", all, err)
	}
}

func testEnrollmentToken(t *testing.T, s store.Devices) {
	ctx := t.Context()
	if err := s.CreateSite(ctx, store.Site{ID: "s1", Name: "Hall", Region: "440305"}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("secret"))
	tok := store.EnrollmentToken{ID: "t1", Hash: h[:], SiteID: "s1", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}
	if err := s.CreateEnrollmentToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "duplicate token id", s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t1", Hash: []byte("other"),
		SiteID: "s1", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}), store.ErrExists)
	wantErr(t, "duplicate token hash", s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t2", Hash: h[:],
		SiteID: "s1", CreatedAt: T0, ExpiresAt: T0.Add(time.Hour)}), store.ErrExists)

	_, err := s.EnrollDevice(ctx, []byte("unknown hash"), store.Device{ID: "k1"}, T0)
	wantErr(t, "unknown token", err, store.ErrNotFound)

	d, err := s.EnrollDevice(ctx, h[:], store.Device{ID: "k1", Model: "K1", CertSerial: "0a", CertExpiry: T0.AddDate(1, 0, 0),
		CertPEM: []byte("-----BEGIN CERTIFICATE-----\n")}, T0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "k1" || d.SiteID != "s1" || d.Region != "440305" || d.Model != "K1" || d.CertSerial != "0a" ||
		!d.CertExpiry.Equal(T0.AddDate(1, 0, 0)) || !d.EnrolledAt.Equal(T0.Add(time.Minute)) || d.Revoked || d.Online {
		t.Fatalf("enrolled device = %+v", d)
	}
	got, err := s.GetDevice(ctx, "k1")
	if err != nil || string(got.CertPEM) != "-----BEGIN CERTIFICATE-----\n" || !got.EnrolledAt.Equal(d.EnrolledAt) {
		t.Fatalf("GetDevice = %+v, %v", got, err)
	}
	_, err = s.EnrollDevice(ctx, h[:], store.Device{ID: "k2"}, T0.Add(2*time.Minute))
	wantErr(t, "second redeem", err, store.ErrTokenUsed)

	h2 := sha256.Sum256([]byte("secret2"))
	if err := s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t3", Hash: h2[:], SiteID: "s1", CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.EnrollDevice(ctx, h2[:], store.Device{ID: "k3"}, T0.Add(time.Hour))
	wantErr(t, "redeem at expiry", err, store.ErrTokenExpired)
	// A device id that exists already fails and leaves the token usable.
	_, err = s.EnrollDevice(ctx, h2[:], store.Device{ID: "k1"}, T0)
	wantErr(t, "duplicate device", err, store.ErrExists)
	if _, err := s.EnrollDevice(ctx, h2[:], store.Device{ID: "k3"}, T0); err != nil {
		t.Fatalf("token unusable after a failed enrollment: %v", err)
	}
	_, err = s.GetDevice(ctx, "k2")
	wantErr(t, "device of refused enrollment", err, store.ErrNotFound)
}

func testEnrollConcurrent(t *testing.T, s store.Devices) {
	ctx := t.Context()
	if err := s.CreateSite(ctx, store.Site{ID: "s1", Name: "Hall", Region: "440305"}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("race"))
	if err := s.CreateEnrollmentToken(ctx, store.EnrollmentToken{ID: "t", Hash: h[:], SiteID: "s1", CreatedAt: T0,
		ExpiresAt: T0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.EnrollDevice(ctx, h[:], store.Device{ID: "k" + string(rune('a'+i))}, T0)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUsed):
			t.Errorf("concurrent redeem: %v, want nil or ErrTokenUsed", err)
		}
	}
	ds, err := s.ListDevices(ctx, store.DeviceFilter{})
	if ok != 1 || err != nil || len(ds) != 1 {
		t.Fatalf("%d redeems succeeded, %d devices (%v); want exactly 1", ok, len(ds), err)
	}
}

func testDevices(t *testing.T, s store.Devices) {
	ctx := t.Context()
	if err := s.CreateSite(ctx, store.Site{ID: "gz", Name: "Guangzhou", Region: "440104"}); err != nil {
		t.Fatal(err)
	}
	Enroll(t, s, "sz", "k1") // region 440305
	Enroll(t, s, "sz", "k2")
	Enroll(t, s, "gz", "k3")
	for _, c := range []struct {
		f    store.DeviceFilter
		want []string
	}{
		{store.DeviceFilter{}, []string{"k1", "k2", "k3"}},
		{store.DeviceFilter{SiteID: "sz"}, []string{"k1", "k2"}},
		{store.DeviceFilter{Region: "44"}, []string{"k1", "k2", "k3"}},
		{store.DeviceFilter{Region: "4401"}, []string{"k3"}},
		{store.DeviceFilter{Region: "440305"}, []string{"k1", "k2"}},
		{store.DeviceFilter{Region: "45"}, nil},
		// A staff member's scope: any of its prefixes, on top of the other filters.
		{store.DeviceFilter{Scope: []string{"440305"}}, []string{"k1", "k2"}},
		{store.DeviceFilter{Scope: []string{"4401", "440305"}}, []string{"k1", "k2", "k3"}},
		{store.DeviceFilter{Scope: []string{"4401", "45"}, Region: "44"}, []string{"k3"}},
		{store.DeviceFilter{Scope: []string{"440305"}, SiteID: "gz"}, nil},
		{store.DeviceFilter{Scope: []string{"45"}}, nil},
	} {
		if got := deviceIDs(t, s, c.f); !slices.Equal(got, c.want) {
			t.Errorf("ListDevices(%+v) = %v, want %v", c.f, got, c.want)
		}
	}

	exp := T0.AddDate(2, 0, 0)
	if err := s.RenewCertificate(ctx, "k1", "0b", exp, []byte("PEM2")); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetDevice(ctx, "k1")
	if err != nil || d.CertSerial != "0b" || !d.CertExpiry.Equal(exp) || string(d.CertPEM) != "PEM2" {
		t.Fatalf("after renew: %+v, %v", d, err)
	}
	if err := s.RevokeDevice(ctx, "k1", T0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	d, _ = s.GetDevice(ctx, "k1")
	if !d.Revoked || !d.RevokedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("after revoke: revoked=%v at %v", d.Revoked, d.RevokedAt)
	}
	creds, err := s.DeviceCredentials(ctx)
	if want := []store.DeviceCredential{
		{ID: "k1", CertSerial: "0b", Revoked: true}, {ID: "k2", CertSerial: "01"}, {ID: "k3", CertSerial: "01"}}; err != nil || !slices.Equal(creds, want) {
		t.Errorf("DeviceCredentials = %+v, %v; want %+v", creds, err, want)
	}
	_, err = s.GetDevice(ctx, "nope")
	wantErr(t, "GetDevice unknown", err, store.ErrNotFound)
	wantErr(t, "RenewCertificate unknown", s.RenewCertificate(ctx, "nope", "1", exp, nil), store.ErrNotFound)
	wantErr(t, "RevokeDevice unknown", s.RevokeDevice(ctx, "nope", T0), store.ErrNotFound)
}

// deviceIDs lists the IDs of the devices f selects.
func deviceIDs(t *testing.T, s store.Devices, f store.DeviceFilter) []string {
	t.Helper()
	ds, err := s.ListDevices(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}
