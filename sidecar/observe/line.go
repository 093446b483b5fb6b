package observe

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The access log is buffered: a write per request would cost more than
// the request (one syscall each, on two sidecars).
const (
	bufSize    = 64 << 10
	flushEvery = 200 * time.Millisecond
)

// line appends one line (made by f) to the buffer, writing the buffer out
// when full.
func (o *Observer) line(f func([]byte) []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(f(o.buf), '}', '\n')
	if len(o.buf) >= bufSize {
		o.w.Write(o.buf) // a full disk loses lines, never requests
		o.buf = o.buf[:0]
	}
}

// Flush writes the buffered lines.
func (o *Observer) Flush() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) > 0 {
		o.w.Write(o.buf)
		o.buf = o.buf[:0]
	}
}

// head opens a line: time, kind, service, direction.
func (l *Listener) head(b []byte, start time.Time, kind string) []byte {
	b = append(b, `{"ts":"`...)
	b = start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = str(b, "kind", kind)
	b = str(b, "service", l.service)
	return str(b, "direction", l.direction)
}

// ms appends the duration in milliseconds (µs precision).
func ms(b []byte, d time.Duration) []byte {
	b = append(b, `,"duration_ms":`...)
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}

// str appends ,"key":"value" with value escaped as JSON (control
// characters as \u00XX, bad UTF-8 as U+FFFD).
func str(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, `":"`...)
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(v[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, v[i:i+n]...)
			}
			i += n
		}
	}
	return append(b, '"')
}
