package websocket

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

var utf8Cases = []string{
	"", "ascii", "κόσμε", "€", "\U0010FFFF", "\uFFFD", "\xef\xbf\xbf",
	"\xc3\x28", "\xa0\xa1", "\xe2\x28\xa1", "\xe2\x82\x28", "\xf0\x28\x8c\xbc",
	"\xf0\x90\x28\xbc", "\xf8\xa1\xa1\xa1\xa1", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80", "\xff",
	"\xe2\x82", "ok\xf0\x9f\x98", "a\x00b",
}

// TestUTF8ValidatorSplits feeds every case split at every byte, and
// compares with the standard library's verdict on the whole.
func TestUTF8ValidatorSplits(t *testing.T) {
	for _, s := range utf8Cases {
		want := utf8.ValidString(s)
		for cut := 0; cut <= len(s); cut++ {
			var v utf8Validator
			got := v.write([]byte(s[:cut])) && v.write([]byte(s[cut:])) && v.complete()
			if got != want {
				t.Errorf("%q split at %d: valid %v, want %v", s, cut, got, want)
			}
		}
		var v utf8Validator
		got := true
		for i := 0; i < len(s) && got; i++ {
			got = v.write([]byte{s[i]})
		}
		if got = got && v.complete(); got != want {
			t.Errorf("%q byte by byte: valid %v, want %v", s, got, want)
		}
	}
}

// TestUTF8ValidatorFailsFast checks that the validator fails on the first
// byte no valid text could continue from.
func TestUTF8ValidatorFailsFast(t *testing.T) {
	cases := map[string]int{ // input: index of the first byte to fail on
		"abc\xed\xa0":       4, // surrogate: ED must be followed by 80..9F
		"\xf4\x90":          1, // above U+10FFFF
		"\xe0\x9f":          1, // overlong
		"ok\xc0":            2, // never valid
		"\xce\xba\xe1\xbd_": 4,
	}
	for s, at := range cases {
		var v utf8Validator
		for i := 0; i < len(s); i++ {
			if !v.write([]byte{s[i]}) {
				if i != at {
					t.Errorf("%q failed at byte %d, want %d", s, i, at)
				}
				break
			}
			if i == len(s)-1 {
				t.Errorf("%q never failed", s)
			}
		}
		// Fed whole, without the end of the message, it fails too.
		if v := (utf8Validator{}); v.write([]byte(s)) {
			t.Errorf("%q accepted as a prefix", s)
		}
	}
}

func TestUTF8ValidatorRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF}
	for range 20000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cut := r.IntN(len(b) + 1)
		var v utf8Validator
		got := v.write(b[:cut]) && v.write(b[cut:]) && v.complete()
		if got != utf8.Valid(b) {
			t.Fatalf("%x split at %d: %v, want %v", b, cut, got, utf8.Valid(b))
		}
	}
}

func BenchmarkUTF8Validator(b *testing.B) {
	text := []byte(strings.Repeat("Hello, κόσμε! ", 1024))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		var v utf8Validator
		if !v.write(text) {
			b.Fatal("invalid")
		}
	}
}
