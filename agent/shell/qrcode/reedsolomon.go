package qrcode

// Reed-Solomon error correction over GF(2^8) with the QR code's primitive polynomial
// x^8 + x^4 + x^3 + x^2 + 1 (0x11D), ISO/IEC 18004 §7.5.2.

var gfExp, gfLog = func() (exp [512]byte, log [256]byte) {
	x := 1
	for i := range 255 {
		exp[i] = byte(x)
		log[x] = byte(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11D
		}
	}
	for i := 255; i < 512; i++ {
		exp[i] = exp[i-255]
	}
	return exp, log
}()

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

// generator returns the generator polynomial of degree n, (x - a^0)(x - a^1)...(x - a^(n-1)),
// highest coefficient first.
func generator(n int) []byte {
	g := []byte{1}
	for i := range n {
		next := make([]byte, len(g)+1)
		for j, c := range g {
			next[j] ^= c
			next[j+1] ^= gfMul(c, gfExp[i])
		}
		g = next
	}
	return g
}

// remainder returns the error correction codewords of data: the remainder of data * x^n
// divided by the generator gen of degree n.
func remainder(data, gen []byte) []byte {
	n := len(gen) - 1
	msg := make([]byte, len(data)+n)
	copy(msg, data)
	for i := range data {
		c := msg[i]
		if c == 0 {
			continue
		}
		for j := 1; j <= n; j++ {
			msg[i+j] ^= gfMul(gen[j], c)
		}
	}
	return msg[len(data):]
}
