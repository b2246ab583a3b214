package websocket

import "unicode/utf8"

// utf8Validator checks text incrementally, across frame and read boundaries,
// and fails at the first byte that no valid continuation could follow.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

// write validates p, which continues what was written before. It reports
// false as soon as the text cannot be valid UTF-8.
func (v *utf8Validator) write(p []byte) bool {
	for v.need > 0 && len(p) > 0 {
		if !v.step(p[0]) {
			return false
		}
		p = p[1:]
	}
	if len(p) == 0 {
		return true
	}
	// The bulk goes to the standard library's validator; only a trailing
	// incomplete sequence is kept in the state machine.
	cut := incompleteTail(p)
	if !utf8.Valid(p[:cut]) {
		return false
	}
	for _, b := range p[cut:] {
		if !v.step(b) {
			return false
		}
	}
	return true
}

// complete reports whether the text so far ends on a character boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

func (v *utf8Validator) reset() { *v = utf8Validator{} }

// step feeds one byte, following Table 3-7 of the Unicode standard.
func (v *utf8Validator) step(b byte) bool {
	if v.need > 0 {
		if b < v.lo || b > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		return true
	}
	v.lo, v.hi = 0x80, 0xBF
	switch {
	case b < 0x80:
	case b >= 0xC2 && b <= 0xDF:
		v.need = 1
	case b == 0xE0:
		v.need, v.lo = 2, 0xA0
	case b >= 0xE1 && b <= 0xEC, b == 0xEE, b == 0xEF:
		v.need = 2
	case b == 0xED:
		v.need, v.hi = 2, 0x9F
	case b == 0xF0:
		v.need, v.lo = 3, 0x90
	case b >= 0xF1 && b <= 0xF3:
		v.need = 3
	case b == 0xF4:
		v.need, v.hi = 3, 0x8F
	default:
		return false
	}
	return true
}

// incompleteTail returns the index where a multi-byte sequence that p does
// not finish begins, or len(p).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		b := p[i]
		if b < 0x80 {
			return len(p)
		}
		if b >= 0xC0 { // a lead byte: is its sequence complete?
			size := 2
			if b >= 0xF0 {
				size = 4
			} else if b >= 0xE0 {
				size = 3
			}
			if len(p)-i < size {
				return i
			}
			return len(p)
		}
	}
	return len(p)
}
