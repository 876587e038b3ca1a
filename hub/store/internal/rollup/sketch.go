package rollup

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
)

// A Sketch counts distinct citizens: exactly, as a sorted set of 64-bit hashes, up to
// SparseMax of them, and beyond that as a HyperLogLog of 2^12 registers (Flajolet et al. 2007,
// with linear counting for small estimates; about 1.6 % standard error). Counts below SparseMax
// (and so every count near the suppression threshold) are exact; sketches merge without losing
// that.
type Sketch struct {
	sparse []uint64 // sorted, without duplicates; nil when dense
	dense  []byte   // 1<<precision registers; nil while sparse
}

const (
	// SparseMax is the largest exact count.
	SparseMax = 256
	precision = 12
	registers = 1 << precision

	version    = 1
	modeSparse = 0
	modeDense  = 1
)

// ErrCorrupt is returned by DecodeSketch for bytes that are not a sketch.
var ErrCorrupt = errors.New("rollup: corrupt sketch")

// Hash is the sketch hash of a pseudonym. Pseudonyms are keyed hashes already; the sketch keeps
// only 64 bits of a hash of them, and only while a cell is small.
func Hash(pseudonym string) uint64 {
	h := sha256.Sum256([]byte(pseudonym))
	return binary.BigEndian.Uint64(h[:8])
}

// Add adds a hash.
func (s *Sketch) Add(h uint64) {
	if s.dense != nil {
		s.addDense(h)
		return
	}
	i, found := slices.BinarySearch(s.sparse, h)
	if found {
		return
	}
	s.sparse = slices.Insert(s.sparse, i, h)
	if len(s.sparse) > SparseMax {
		s.densify()
	}
}

func (s *Sketch) densify() {
	s.dense = make([]byte, registers)
	for _, h := range s.sparse {
		s.addDense(h)
	}
	s.sparse = nil
}

func (s *Sketch) addDense(h uint64) {
	idx := h >> (64 - precision)
	rho := byte(bits.LeadingZeros64(h<<precision|1<<(precision-1)) + 1)
	if rho > s.dense[idx] {
		s.dense[idx] = rho
	}
}

// Merge adds every hash of o.
func (s *Sketch) Merge(o Sketch) {
	switch {
	case o.dense != nil:
		if s.dense == nil {
			s.densify()
		}
		for i, r := range o.dense {
			s.dense[i] = max(s.dense[i], r)
		}
	case s.dense != nil:
		for _, h := range o.sparse {
			s.addDense(h)
		}
	default:
		merged := make([]uint64, 0, len(s.sparse)+len(o.sparse))
		i, j := 0, 0
		for i < len(s.sparse) || j < len(o.sparse) {
			switch {
			case j == len(o.sparse) || (i < len(s.sparse) && s.sparse[i] < o.sparse[j]):
				merged = append(merged, s.sparse[i])
				i++
			case i == len(s.sparse) || o.sparse[j] < s.sparse[i]:
				merged = append(merged, o.sparse[j])
				j++
			default:
				merged = append(merged, s.sparse[i])
				i, j = i+1, j+1
			}
		}
		s.sparse = merged
		if len(s.sparse) > SparseMax {
			s.densify()
		}
	}
}

// Count returns the number of distinct hashes added: exact up to SparseMax, estimated beyond.
func (s Sketch) Count() int64 {
	if s.dense == nil {
		return int64(len(s.sparse))
	}
	m := float64(registers)
	sum, zeros := 0.0, 0
	for _, r := range s.dense {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := 0.7213 / (1 + 1.079/m) * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	// Never below the exact count it had when it turned dense.
	return max(int64(math.Round(e)), SparseMax+1)
}

// Encode returns the sketch's bytes: a version, a mode, then the sorted hashes (8 bytes each,
// big-endian) or the registers.
func (s Sketch) Encode() []byte {
	if s.dense != nil {
		return append([]byte{version, modeDense}, s.dense...)
	}
	b := make([]byte, 2, 2+8*len(s.sparse))
	b[0], b[1] = version, modeSparse
	for _, h := range s.sparse {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

// MergeEncoded merges the sketch that Encode wrote into b, as Merge(DecodeSketch(b)) would,
// without copying it first: a heat query folds thousands of stored sketches. b is only read, and
// may be reused by the caller when MergeEncoded returns. Corrupt bytes leave s unchanged.
func (s *Sketch) MergeEncoded(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) < 2 || b[0] != version {
		return ErrCorrupt
	}
	body := b[2:]
	switch b[1] {
	case modeDense:
		if len(body) != registers {
			return ErrCorrupt
		}
		if s.dense == nil {
			s.densify()
		}
		for i, r := range body {
			s.dense[i] = max(s.dense[i], r)
		}
		return nil
	case modeSparse:
		o, err := DecodeSketch(b) // at most SparseMax hashes
		if err != nil {
			return err
		}
		s.Merge(o)
		return nil
	}
	return ErrCorrupt
}

// DecodeSketch reads what Encode wrote; empty bytes are the empty sketch.
func DecodeSketch(b []byte) (Sketch, error) {
	var s Sketch
	if len(b) == 0 {
		return s, nil
	}
	if len(b) < 2 || b[0] != version {
		return s, ErrCorrupt
	}
	body := b[2:]
	switch b[1] {
	case modeDense:
		if len(body) != registers {
			return s, ErrCorrupt
		}
		s.dense = slices.Clone(body)
	case modeSparse:
		if len(body)%8 != 0 || len(body)/8 > SparseMax {
			return s, ErrCorrupt
		}
		s.sparse = make([]uint64, len(body)/8)
		for i := range s.sparse {
			s.sparse[i] = binary.BigEndian.Uint64(body[8*i:])
			if i > 0 && s.sparse[i] <= s.sparse[i-1] {
				return Sketch{}, ErrCorrupt
			}
		}
	default:
		return s, ErrCorrupt
	}
	return s, nil
}
