package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunUpdates runs the suite of store.Updates.
func RunUpdates(t *testing.T, open func(t *testing.T) store.Updates) {
	suite[store.Updates]{
		{"Metadata", testMetadata},
		{"MetadataRace", testMetadataRace},
	}.run(t, open)
}

func testMetadata(t *testing.T, s store.Updates) {
	ctx := t.Context()
	_, err := s.LatestMetadata(ctx, "timestamp")
	wantErr(t, "latest of none", err, store.ErrNotFound)
	for v := int64(1); v <= 3; v++ {
		must(t, s.PutMetadata(ctx, store.TUFMetadata{Role: "timestamp", Version: v, Data: []byte(`{"v":` + string(rune('0'+v)) + `}`),
			Expires: T0.Add(time.Duration(v) * time.Hour), CreatedAt: T0}))
	}
	must(t, s.PutMetadata(ctx, store.TUFMetadata{Role: "root", Version: 1, Data: []byte(`{"root":1}`), Expires: T0.AddDate(1, 0, 0), CreatedAt: T0}))
	wantErr(t, "same version twice", s.PutMetadata(ctx, store.TUFMetadata{Role: "timestamp", Version: 2, Data: []byte(`{}`), CreatedAt: T0}), store.ErrExists)
	wantErr(t, "no data", s.PutMetadata(ctx, store.TUFMetadata{Role: "timestamp", Version: 9}), store.ErrInvalid)
	m, err := s.LatestMetadata(ctx, "timestamp")
	if err != nil || m.Version != 3 || string(m.Data) != `{"v":3}` || !m.Expires.Equal(T0.Add(3*time.Hour)) || !m.CreatedAt.Equal(T0) {
		t.Fatalf("LatestMetadata = %+v, %v", m, err)
	}
	m, err = s.GetMetadata(ctx, "timestamp", 2)
	if err != nil || string(m.Data) != `{"v":2}` {
		t.Fatalf("GetMetadata = %+v, %v", m, err)
	}
	_, err = s.GetMetadata(ctx, "root", 2)
	wantErr(t, "unknown version", err, store.ErrNotFound)
}

// testMetadataRace: replicas sign the same next version at once; exactly one is stored.
func testMetadataRace(t *testing.T, s store.Updates) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.PutMetadata(ctx, store.TUFMetadata{Role: "snapshot", Version: 1, Data: []byte{byte('a' + i)}, CreatedAt: T0})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrExists) {
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d replicas stored version 1", ok)
	}
}
