// Package qrcode encodes short byte strings as QR codes (ISO/IEC 18004:2015) for the kiosk
// shell's login screen, rendered locally (no network): byte mode, error correction level M,
// versions 1 to 10 (up to 213 bytes, enough for a verification URL), with the mask of lowest
// penalty. It only encodes; the test decodes its codes with a real reader (zbarimg).
package qrcode

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"strings"
)

// ErrTooLong is returned for data that does not fit a version 10 code at level M.
var ErrTooLong = errors.New("qrcode: data too long")

// Code is an encoded QR code: Size x Size modules, without the quiet zone.
type Code struct {
	Size    int
	Version int
	Mask    int
	dark    []bool // row-major
}

// Dark reports whether the module in column x, row y is dark.
func (c *Code) Dark(x, y int) bool { return c.dark[y*c.Size+x] }

// blocks of the error correction level M (ISO/IEC 18004 Table 9): per version, the number of
// EC codewords per block and the data codewords of each block.
var levelM = [11]struct {
	ec   int
	data []int
}{
	1:  {10, []int{16}},
	2:  {16, []int{28}},
	3:  {26, []int{44}},
	4:  {18, []int{32, 32}},
	5:  {24, []int{43, 43}},
	6:  {16, []int{27, 27, 27, 27}},
	7:  {18, []int{31, 31, 31, 31}},
	8:  {22, []int{38, 38, 39, 39}},
	9:  {22, []int{36, 36, 36, 37, 37}},
	10: {26, []int{43, 43, 43, 43, 44}},
}

// alignment pattern centres (Annex E).
var alignment = [11][]int{2: {6, 18}, 3: {6, 22}, 4: {6, 26}, 5: {6, 30}, 6: {6, 34},
	7: {6, 22, 38}, 8: {6, 24, 42}, 9: {6, 26, 46}, 10: {6, 28, 50}}

// remainder bits after the codewords (Table 1).
func remainderBits(v int) int {
	if v >= 2 && v <= 6 {
		return 7
	}
	return 0
}

func dataCapacity(v int) int {
	n := 0
	for _, d := range levelM[v].data {
		n += d
	}
	return n
}

// Encode encodes data in byte mode at level M in the smallest version that holds it.
func Encode(data []byte) (*Code, error) {
	v := 1
	for ; v <= 10; v++ {
		countBits := 8
		if v >= 10 {
			countBits = 16
		}
		if 4+countBits+8*len(data) <= 8*dataCapacity(v) {
			break
		}
	}
	if v > 10 {
		return nil, fmt.Errorf("%w: %d bytes, at most 213", ErrTooLong, len(data))
	}
	codewords := interleave(v, dataCodewords(v, data))
	best := -1
	var out *Code
	for mask := range 8 {
		c := newMatrix(v)
		c.drawFunctions(mask)
		c.drawCodewords(codewords)
		c.applyMask(mask)
		if p := c.penalty(); best < 0 || p < best {
			best, out = p, c.code(mask)
		}
	}
	return out, nil
}

// dataCodewords makes the bit stream (mode, count, data, terminator, padding) of §7.4.
func dataCodewords(v int, data []byte) []byte {
	var bits bitBuffer
	bits.put(0b0100, 4) // byte mode
	if v >= 10 {
		bits.put(len(data), 16)
	} else {
		bits.put(len(data), 8)
	}
	for _, b := range data {
		bits.put(int(b), 8)
	}
	capBits := 8 * dataCapacity(v)
	bits.put(0, min(4, capBits-bits.n)) // terminator
	bits.put(0, (8-bits.n%8)%8)
	out := bits.bytes()
	for pad := byte(0xEC); len(out) < dataCapacity(v); pad ^= 0xEC ^ 0x11 {
		out = append(out, pad)
	}
	return out
}

// interleave splits data into the version's blocks, adds each block's Reed-Solomon codewords and
// interleaves them (§7.6).
func interleave(v int, data []byte) []byte {
	spec := levelM[v]
	gen := generator(spec.ec)
	var blocks, ecs [][]byte
	for _, n := range spec.data {
		blocks = append(blocks, data[:n])
		ecs = append(ecs, remainder(data[:n], gen))
		data = data[n:]
	}
	var out []byte
	for i := 0; i < spec.data[len(spec.data)-1]; i++ {
		for _, b := range blocks {
			if i < len(b) {
				out = append(out, b[i])
			}
		}
	}
	for i := range spec.ec {
		for _, e := range ecs {
			out = append(out, e[i])
		}
	}
	return out
}

type bitBuffer struct {
	buf []byte
	n   int
}

func (b *bitBuffer) put(v, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if b.n%8 == 0 {
			b.buf = append(b.buf, 0)
		}
		if v>>i&1 == 1 {
			b.buf[b.n/8] |= 0x80 >> (b.n % 8)
		}
		b.n++
	}
}

func (b *bitBuffer) bytes() []byte { return b.buf }

// matrix is a code being drawn.
type matrix struct {
	v, size  int
	dark, fn [][]bool // fn: function pattern modules, never masked
}

func newMatrix(v int) *matrix {
	size := 17 + 4*v
	m := &matrix{v: v, size: size, dark: make([][]bool, size), fn: make([][]bool, size)}
	for y := range size {
		m.dark[y], m.fn[y] = make([]bool, size), make([]bool, size)
	}
	return m
}

func (m *matrix) set(x, y int, dark bool) { m.dark[y][x], m.fn[y][x] = dark, true }

// drawFunctions draws the finder, timing and alignment patterns, the format information for
// mask and the version information (§6.3).
func (m *matrix) drawFunctions(mask int) {
	for i := range m.size {
		m.set(6, i, i%2 == 0)
		m.set(i, 6, i%2 == 0)
	}
	for _, c := range [][2]int{{3, 3}, {m.size - 4, 3}, {3, m.size - 4}} {
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				x, y := c[0]+dx, c[1]+dy
				if x >= 0 && x < m.size && y >= 0 && y < m.size {
					d := max(abs(dx), abs(dy))
					m.set(x, y, d != 2 && d != 4)
				}
			}
		}
	}
	pos := alignment[m.v]
	for i, cx := range pos {
		for j, cy := range pos {
			if (i == 0 && j == 0) || (i == 0 && j == len(pos)-1) || (i == len(pos)-1 && j == 0) {
				continue // on a finder
			}
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					m.set(cx+dx, cy+dy, max(abs(dx), abs(dy)) != 1)
				}
			}
		}
	}
	m.drawFormat(mask)
	if m.v >= 7 { // §7.10: 6 bits of version and a BCH(18,6) code
		rem := m.v
		for range 12 {
			rem = rem<<1 ^ (rem>>11)*0x1F25
		}
		bits := m.v<<12 | rem
		for i := range 18 {
			dark := bits>>i&1 == 1
			a, b := m.size-11+i%3, i/3
			m.set(a, b, dark)
			m.set(b, a, dark)
		}
	}
}

// drawFormat draws both copies of the format information: level M (00) and the mask, with a
// BCH(15,5) code, XORed with 101010000010010 (§7.9).
func (m *matrix) drawFormat(mask int) {
	data := 0b00<<3 | mask
	rem := data
	for range 10 {
		rem = rem<<1 ^ (rem>>9)*0x537
	}
	bits := (data<<10 | rem) ^ 0x5412
	bit := func(i int) bool { return bits>>i&1 == 1 }
	for i := range 6 {
		m.set(8, i, bit(i))
	}
	m.set(8, 7, bit(6))
	m.set(8, 8, bit(7))
	m.set(7, 8, bit(8))
	for i := 9; i < 15; i++ {
		m.set(14-i, 8, bit(i))
	}
	for i := range 8 {
		m.set(m.size-1-i, 8, bit(i))
	}
	for i := 8; i < 15; i++ {
		m.set(8, m.size-15+i, bit(i))
	}
	m.set(8, m.size-8, true) // the dark module
}

// drawCodewords places the codewords' bits in the zigzag order of §7.7.3.
func (m *matrix) drawCodewords(cw []byte) {
	i := 0
	for right := m.size - 1; right >= 1; right -= 2 {
		if right == 6 {
			right = 5 // skip the vertical timing pattern
		}
		for vert := range m.size {
			for j := range 2 {
				x := right - j
				y := vert
				if (right+1)&2 == 0 {
					y = m.size - 1 - vert
				}
				if !m.fn[y][x] && i < len(cw)*8 {
					m.dark[y][x] = cw[i>>3]>>(7-i&7)&1 == 1
					i++
				}
			}
		}
	}
}

func (m *matrix) applyMask(mask int) {
	for y := range m.size {
		for x := range m.size {
			if m.fn[y][x] {
				continue
			}
			var flip bool
			switch mask {
			case 0:
				flip = (x+y)%2 == 0
			case 1:
				flip = y%2 == 0
			case 2:
				flip = x%3 == 0
			case 3:
				flip = (x+y)%3 == 0
			case 4:
				flip = (x/3+y/2)%2 == 0
			case 5:
				flip = x*y%2+x*y%3 == 0
			case 6:
				flip = (x*y%2+x*y%3)%2 == 0
			case 7:
				flip = ((x+y)%2+x*y%3)%2 == 0
			}
			m.dark[y][x] = m.dark[y][x] != flip
		}
	}
}

// penalty scores a masked symbol by the rules of §7.8.3 (lower is better).
func (m *matrix) penalty() int {
	p, darkCount := 0, 0
	line := func(get func(i int) bool) {
		run, prev := 0, false
		for i := range m.size {
			d := get(i)
			if i > 0 && d == prev {
				run++
			} else {
				if run >= 5 {
					p += 3 + run - 5
				}
				run, prev = 1, d
			}
		}
		if run >= 5 {
			p += 3 + run - 5
		}
		// 1:1:3:1:1 finder-like patterns with four light modules on one side.
		for i := 0; i+11 <= m.size; i++ {
			a, b := true, true
			for k, want := range []bool{true, false, true, true, true, false, true, false, false, false, false} {
				a = a && get(i+k) == want
				b = b && get(i+10-k) == want
			}
			if a {
				p += 40
			}
			if b {
				p += 40
			}
		}
	}
	for y := range m.size {
		line(func(x int) bool { return m.dark[y][x] })
	}
	for x := range m.size {
		line(func(y int) bool { return m.dark[y][x] })
	}
	for y := range m.size {
		for x := range m.size {
			if m.dark[y][x] {
				darkCount++
			}
			if x > 0 && y > 0 {
				c := m.dark[y][x]
				if m.dark[y-1][x] == c && m.dark[y][x-1] == c && m.dark[y-1][x-1] == c {
					p += 3
				}
			}
		}
	}
	total := m.size * m.size
	p += abs(darkCount*20-total*10) / total * 10
	return p
}

func (m *matrix) code(mask int) *Code {
	c := &Code{Size: m.size, Version: m.v, Mask: mask, dark: make([]bool, 0, m.size*m.size)}
	for y := range m.size {
		c.dark = append(c.dark, m.dark[y]...)
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Quiet is the width of the light border a reader needs around the code, in modules.
const Quiet = 4

// SVG renders the code as an SVG image (black on white, with the quiet zone) whose modules are
// one user unit: size it with CSS.
func (c *Code) SVG() string {
	var b strings.Builder
	n := c.Size + 2*Quiet
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := range c.Size {
		for x := range c.Size {
			if c.Dark(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+Quiet, y+Quiet)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String()
}

// Image renders the code with scale pixels per module and the quiet zone.
func (c *Code) Image(scale int) image.Image {
	n := (c.Size + 2*Quiet) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for py := range n {
		for px := range n {
			x, y := px/scale-Quiet, py/scale-Quiet
			v := color.Gray{Y: 255}
			if x >= 0 && y >= 0 && x < c.Size && y < c.Size && c.Dark(x, y) {
				v = color.Gray{}
			}
			img.SetGray(px, py, v)
		}
	}
	return img
}
