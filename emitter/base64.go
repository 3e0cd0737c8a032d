package emitter

import (
	"encoding/base64"
	"encoding/binary"
)

// base64Pairs maps 12 bits to their two characters of the standard base64
// alphabet (the first in the low byte), so that appendBase64 does one lookup
// per two characters.
var base64Pairs = func() (t [4096]uint16) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = uint16(alphabet[i>>6]) | uint16(alphabet[i&63])<<8
	}
	return t
}()

// appendBase64 appends src in standard base64 with padding, as
// base64.StdEncoding.AppendEncode does, about twice as fast: it turns six
// bytes into eight characters with four table lookups and one store.
func appendBase64(dst, src []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, base64.StdEncoding.EncodedLen(len(src)))...)
	out := dst[n:]
	i, o := 0, 0
	for ; len(src)-i >= 8 && len(out)-o >= 8; i, o = i+6, o+8 {
		v := binary.BigEndian.Uint64(src[i:]) // the top 48 bits are used
		binary.LittleEndian.PutUint64(out[o:], uint64(base64Pairs[v>>52])|
			uint64(base64Pairs[v>>40&0xfff])<<16|
			uint64(base64Pairs[v>>28&0xfff])<<32|
			uint64(base64Pairs[v>>16&0xfff])<<48)
	}
	base64.StdEncoding.Encode(out[o:], src[i:])
	return dst
}
