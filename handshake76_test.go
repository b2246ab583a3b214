package websocket

import (
	"crypto/md5"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// browserKey makes a Sec-WebSocket-Key1/2 value the way a draft-hixie-76
// browser did (draft-hixie-76 section 4.1, steps 17 to 21) and returns it with
// the number the server must derive from it.
func browserKey(r *rand.Rand) (key string, number uint32) {
	spaces := 1 + r.IntN(12)
	limit := uint32(math.MaxUint32) / uint32(spaces)
	number = uint32(r.Uint64N(uint64(limit) + 1))
	b := []byte(strconv.FormatUint(uint64(number)*uint64(spaces), 10))
	// 1 to 12 random characters from U+0021–U+002F and U+003A–U+007E, anywhere.
	for range 1 + r.IntN(12) {
		n := r.IntN(15 + 69)
		ch := byte(0x21 + n)
		if n >= 15 {
			ch = byte(0x3A + n - 15)
		}
		b = slices.Insert(b, r.IntN(len(b)+1), ch)
	}
	// The spaces go anywhere but the start and the end.
	for range spaces {
		b = slices.Insert(b, 1+r.IntN(len(b)-1), ' ')
	}
	return string(b), number
}

// md5Challenge is the hixie-76 answer, computed here independently of the
// package: MD5 of the two numbers as big-endian 32-bit integers and key3.
func md5Challenge(n1, n2 uint32, key3 []byte) [16]byte {
	b := []byte{byte(n1 >> 24), byte(n1 >> 16), byte(n1 >> 8), byte(n1), byte(n2 >> 24), byte(n2 >> 16), byte(n2 >> 8), byte(n2)}
	return md5.Sum(append(b, key3...))
}

func TestHixieKeyNumber(t *testing.T) {
	// The arithmetic is spelled out so each expectation can be checked by hand.
	for _, tc := range []struct {
		key  string
		want uint32
		err  error
	}{
		{"4 @1  46546xW%0l 1 5", 829309203, nil},                // 4146546015 / 5
		{"12998 5 Y3 1  .P00", 259970620, nil},                  // 1299853100 / 5
		{"18x 6]8vM;54 *(5:  {   U1]8  z [  8", 155712099, nil}, // 1868545188 / 12
		{"1_ tx7X d  <  nw  334J702) 7]o}` 0", 173347027, nil},  // 1733470270 / 10
		{"0 x", 0, nil},                                                // 0 / 1
		{"429496729 5", math.MaxUint32, nil},                           // 4294967295 / 1
		{"4294967295     ", 858993459, nil},                            // 4294967295 / 5
		{"000000000000000000000000004294967295 ", math.MaxUint32, nil}, // leading zeros add nothing
		{"7 7 7 ", 259, nil},                                           // 777 / 3
		{"\u0661\u0662 3", 3, nil},                                     // Arabic-Indic digits are not digits: 3 / 1
		{"42949 67296", 0, errKeyTooLarge},                             // 4294967296 / 1
		{"4294 967 296", 0, errKeyTooLarge},                            // 4294967296 / 2 would fit: refused before dividing
		{"99999999999999999999999999999999 9", 0, errKeyTooLarge},      // would overflow 64 bits too
		{"12345", 0, errKeyNoSpace},
		{"", 0, errKeyNoSpace},
		{"12\t34", 0, errKeyNoSpace},    // only U+0020 counts
		{"1\u00a02", 0, errKeyNoSpace},  // a no-break space is no space
		{"1 2 3", 0, errKeyRemainder},   // 123 / 2
		{"8 8 8 8", 0, errKeyRemainder}, // 8888 / 3
	} {
		got, err := hixieKeyNumber(tc.key)
		if !errors.Is(err, tc.err) || (tc.err == nil && got != tc.want) {
			t.Errorf("hixieKeyNumber(%q) = %d, %v; want %d, %v", tc.key, got, err, tc.want, tc.err)
		}
	}
}

func TestHixieKeyNumberBrowserKeys(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 76))
	for range 10000 {
		key, want := browserKey(r)
		if got, err := hixieKeyNumber(key); err != nil || got != want {
			t.Fatalf("hixieKeyNumber(%q) = %d, %v; want %d", key, got, err, want)
		}
	}
}

func TestHixieChallenge(t *testing.T) {
	for _, tc := range []struct {
		key1, key2 uint32
		key3, want string
	}{
		{829309203, 259970620, "^n:ds[4U", "8jKS'y:G*Co,Wxa-"},
		{155712099, 173347027, "Tm[K T2u", "fQJ,fN/4F4!~K~MH"},
	} {
		got := hixieChallenge(tc.key1, tc.key2, [8]byte([]byte(tc.key3)))
		if string(got[:]) != tc.want {
			t.Errorf("hixieChallenge(%d, %d, %q) = %q, want %q", tc.key1, tc.key2, tc.key3, got, tc.want)
		}
		if indep := md5Challenge(tc.key1, tc.key2, []byte(tc.key3)); string(indep[:]) != tc.want {
			t.Errorf("the test's own MD5 computation gives %q, want %q", indep, tc.want)
		}
	}
	r := rand.New(rand.NewPCG(rand.Uint64(), 6))
	for range 1000 {
		n1, n2 := r.Uint32(), r.Uint32()
		var key3 [8]byte
		for i := range key3 {
			key3[i] = byte(r.Uint32())
		}
		if got, want := hixieChallenge(n1, n2, key3), md5Challenge(n1, n2, key3[:]); got != want {
			t.Fatalf("hixieChallenge(%d, %d, %x) = %x, want %x", n1, n2, key3, got, want)
		}
	}
}
