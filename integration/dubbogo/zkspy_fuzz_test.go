package dubbogo

import "testing"

// FuzzZKDecode feeds the spy's decoders arbitrary frames: they must never
// panic, whatever a client or server sends.
func FuzzZKDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6, '/', 'd', 'u', 'b', 'b', 'o', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 5, 'w', 'o', 'r', 'l', 'd', 0, 0, 0, 6, 'a', 'n', 'y', 'o', 'n', 'e', 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x'})
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 1, '/'})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &zkSpy{ops: map[string]int{}, replies: map[string]int{}, events: map[string]int{}}
		p := &zkPair{spy: s, id: 1, xids: map[int32]string{}}
		p.request(b) // the connect request
		p.request(b)
		p.reply(b) // the connect answer
		p.reply(b)
		_ = s.report()
	})
}
