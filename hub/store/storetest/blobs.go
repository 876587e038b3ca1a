package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// RunBlobs runs the suite of store.Blobs.
func RunBlobs(t *testing.T, open func(t *testing.T) store.Blobs) {
	suite[store.Blobs]{
		{"PutGet", testBlobs},
	}.run(t, open)
}

// NewBlob returns a blob of data with its hash.
func NewBlob(typ string, data []byte) store.Blob {
	h := sha256.Sum256(data)
	return store.Blob{SHA256: hex.EncodeToString(h[:]), Type: typ, Size: int64(len(data)), Data: data, CreatedAt: T0}
}

func testBlobs(t *testing.T, s store.Blobs) {
	ctx := t.Context()
	big := bytes.Repeat([]byte("kiosk bundle "), 500_000) // ~6 MB: a bundle's size
	for _, data := range [][]byte{[]byte("%PDF-1.7 template"), big} {
		b := NewBlob("application/pdf", data)
		must(t, s.PutBlob(ctx, b))
		must(t, s.PutBlob(ctx, b)) // again: no error, nothing changes
		got, err := s.GetBlob(ctx, b.SHA256)
		if err != nil || !bytes.Equal(got.Data, data) || got.Size != int64(len(data)) || got.Type != b.Type || !got.CreatedAt.Equal(T0) {
			t.Fatalf("GetBlob = %d bytes %+v, %v", len(got.Data), got.Size, err)
		}
		st, err := s.StatBlob(ctx, b.SHA256)
		if err != nil || st.Data != nil || st.Size != int64(len(data)) {
			t.Fatalf("StatBlob = %+v, %v", st.Size, err)
		}
	}
	_, err := s.GetBlob(ctx, NewBlob("x", []byte("absent")).SHA256)
	wantErr(t, "unknown blob", err, store.ErrNotFound)
	wantErr(t, "blob without hash", s.PutBlob(ctx, store.Blob{Type: "x", Data: []byte("x")}), store.ErrInvalid)
}
