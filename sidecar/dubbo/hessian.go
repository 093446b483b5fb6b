package dubbo

// maxString is the longest message appendString writes: the two short
// forms of a hessian2 string cover up to 1023 characters, which is all
// an error message needs.
const maxString = 1023

// appendString appends s as a hessian2 string, by hand rather than with
// a hessian2 library for one type:
//
//	x00-x1f <utf8>        length 0-31
//	x30-x33 b0 <utf8>     length 0-1023, (code-0x30)<<8 + b0
//
// Hessian2 counts a length in UTF-16 units; s is made plain ASCII first
// (anything else becomes '?', control characters too) and cut to
// maxString, so bytes and units agree and no chunked form is needed.
func appendString(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	n := len(s)
	if n <= 31 {
		b = append(b, byte(n))
	} else {
		b = append(b, byte(0x30+n>>8), byte(n))
	}
	for i := 0; i < n; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}

// readString decodes what appendString writes (the two short forms of
// an ASCII string); tests and the load generator read error bodies
// with it. ok is false for anything else.
func readString(b []byte) (s string, ok bool) {
	if len(b) == 0 {
		return "", false
	}
	var n int
	switch c := b[0]; {
	case c <= 0x1f:
		n, b = int(c), b[1:]
	case c >= 0x30 && c <= 0x33 && len(b) >= 2:
		n, b = int(c-0x30)<<8|int(b[1]), b[2:]
	default:
		return "", false
	}
	if len(b) < n {
		return "", false
	}
	return string(b[:n]), true
}

// ErrorMessage is the message of an error response's body written by
// ErrorResponse (a short ASCII hessian2 string), or "" if it is not one.
func ErrorMessage(body []byte) string {
	s, _ := readString(body)
	return s
}
