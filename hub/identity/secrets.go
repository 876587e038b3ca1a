package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// secrets holds the keys derived from the configured master secret (HKDF-SHA256, RFC 5869),
// one per purpose so that no key serves two.
type secrets struct {
	tokenKey   [32]byte    // access token encryption (op.Crypto)
	idHashKey  []byte      // HMAC key of the ID number lookup hash
	pairwise   []byte      // pairwise subject derivation
	idAEAD     cipher.AEAD // ID number encryption
	keyAEAD    cipher.AEAD // signing keys at rest
	cookieHMAC []byte

	phoneHMAC   []byte      // phone number lookup hash and one-time code hashes
	phoneAEAD   cipher.AEAD // phone numbers at rest
	passkeyUser []byte      // WebAuthn user handles
	upstream    []byte      // upstream subjects as links keep them
}

func deriveSecrets(master []byte) (*secrets, error) {
	if len(master) < 32 {
		return nil, fmt.Errorf("%w: master secret must have at least 32 bytes, has %d", ErrConfig, len(master))
	}
	derive := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, "kioskfleet identity "+info, 32)
		if err != nil {
			panic(err) // only on a length beyond 255*32
		}
		return k
	}
	s := &secrets{idHashKey: derive("id-hash"), pairwise: derive("pairwise"), cookieHMAC: derive("cookie"),
		phoneHMAC: derive("phone-hash"), passkeyUser: derive("passkey-user"), upstream: derive("upstream-subject")}
	copy(s.tokenKey[:], derive("access-token"))
	var err error
	if s.idAEAD, err = newAEAD(derive("id-number")); err != nil {
		return nil, err
	}
	if s.keyAEAD, err = newAEAD(derive("signing-keys")); err != nil {
		return nil, err
	}
	if s.phoneAEAD, err = newAEAD(derive("phone-number")); err != nil {
		return nil, err
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func seal(a cipher.AEAD, plain, ad []byte) []byte {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, ad)
}

func open(a cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// idHash is the lookup hash of an ID number.
func (s *secrets) idHash(idNumber string) []byte { return mac(s.idHashKey, idNumber) }

// subject returns the subject identifier of user at client: the user ID for public clients,
// and for pairwise ones a value that differs per sector (OIDC Core §8.1).
func (s *secrets) subject(c store.Client, userID string) string {
	if !c.Pairwise {
		return userID
	}
	sector := c.Sector
	if sector == "" {
		sector = c.ID
	}
	return base64.RawURLEncoding.EncodeToString(mac(s.pairwise, sector, userID))
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenID returns a token's row ID: the time it is made (hexadecimal nanoseconds, so that IDs
// sort by it) and 12 random bytes. New tokens then land at the end of the store's index of IDs
// instead of on a random page of it, which a rotation under load would otherwise write (and
// checkpoint) once per token. The ID is never handed out as a credential: an access token carries
// it encrypted, a refresh token is a separate random value.
func tokenID(now time.Time) string {
	return fmt.Sprintf("%016x", uint64(now.UnixNano())) + randomToken(12)
}

// refreshToken returns a new refresh token: the time it is made (16 hexadecimal digits of
// nanoseconds) and 32 random bytes, base64url-encoded. The time is no secret (the client got the
// token then); the 256 random bits are the credential.
func refreshToken(now time.Time) string {
	return fmt.Sprintf("%016x", uint64(now.UnixNano())) + randomToken(32)
}

// refreshTokenLen is the length of refreshToken's values; those of before (the random part
// alone) are shorter.
const refreshTokenLen = 16 + 43

// refreshHash is what the store keeps of a refresh token and finds it by: the time the token
// carries (8 bytes, big-endian) and then the SHA-256 of the whole token. New tokens so land at
// the end of the store's index of hashes instead of on a random page of it, which every rotation
// would otherwise write (and checkpoint); the lookup is still an exact match on the SHA-256. A
// token of before (the random part alone) is kept by its SHA-256 alone.
func refreshHash(value string) []byte {
	if len(value) == refreshTokenLen {
		if t, err := strconv.ParseUint(value[:16], 16, 64); err == nil {
			h := sha256.Sum256([]byte(value))
			return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(h)), t), h[:]...)
		}
	}
	return sha(value)
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
