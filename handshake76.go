package websocket

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
)

// parseHixie76 reads and checks the draft-hixie-76 fields of the request
// into hs. key3 follows the headers and is read after the hijack.
func parseHixie76(r *http.Request, hs *handshake) *refusal {
	var err1, err2 error
	hs.key1, err1 = hixieKeyNumber(r.Header.Get("Sec-WebSocket-Key1"))
	hs.key2, err2 = hixieKeyNumber(r.Header.Get("Sec-WebSocket-Key2"))
	if err := errors.Join(err1, err2); err != nil {
		return &refusal{refBadHandshake, http.StatusBadRequest, err.Error()}
	}
	hs.origin = r.Header.Get("Origin")
	// web-socket-js sends its subprotocol under the -75 name.
	p := r.Header.Get("Sec-WebSocket-Protocol")
	if p == "" {
		p = r.Header.Get("WebSocket-Protocol")
	}
	if p != "" {
		hs.offered = []string{p}
	}
	return nil
}

var (
	errKeyNoSpace   = errors.New("hixie-76 key has no space")
	errKeyTooLarge  = errors.New("hixie-76 key number exceeds 4294967295")
	errKeyRemainder = errors.New("hixie-76 key number is not a multiple of its spaces")
)

// hixieKeyNumber derives the number of a Sec-WebSocket-Key1/2 field: its
// digits read as one integer, divided by its count of spaces.
func hixieKeyNumber(key string) (uint32, error) {
	var n uint64
	spaces := uint64(0)
	for i := 0; i < len(key); i++ {
		switch b := key[i]; {
		case b >= '0' && b <= '9':
			n = n*10 + uint64(b-'0')
			if n > math.MaxUint32 {
				return 0, errKeyTooLarge
			}
		case b == ' ':
			spaces++
		}
	}
	switch {
	case spaces == 0:
		return 0, errKeyNoSpace
	case n%spaces != 0:
		return 0, errKeyRemainder
	}
	return uint32(n / spaces), nil
}

// hixieChallenge is the 16-byte answer: MD5(be32(key1) ‖ be32(key2) ‖ key3).
func hixieChallenge(key1, key2 uint32, key3 [8]byte) [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], key1)
	binary.BigEndian.PutUint32(b[4:], key2)
	copy(b[8:], key3[:])
	return md5.Sum(b[:])
}

// newHixieKey makes a Sec-WebSocket-Key1 or -Key2 as the draft says
// (section 4.1): a random number times a random count of spaces (1 to
// 12), with 1 to 12 random non-digit characters inserted anywhere and the
// spaces anywhere but at either end. It returns the key and its number.
func newHixieKey() (string, uint32) {
	spaces := 1 + rand.N(uint64(12))
	number := rand.N(math.MaxUint32/spaces + 1)
	key := []byte(strconv.FormatUint(number*spaces, 10))
	for range 1 + rand.N(12) {
		// From U+0021-U+002F and U+003A-U+007E: printable, not digits.
		c := byte('!' + rand.N(15))
		if rand.N(2) == 0 {
			c = byte(':' + rand.N(69))
		}
		key = slices.Insert(key, rand.N(len(key)+1), c)
	}
	for range spaces {
		key = slices.Insert(key, 1+rand.N(len(key)-1), ' ')
	}
	return string(key), uint32(number)
}
