package h2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// echoApp is a net/http h2c server that answers with what it got: the
// oracle's upstream.
func echoApp(tb testing.TB) string {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Fuzz", strings.Join(r.Header.Values("X-Fuzz"), "|"))
		w.Header().Set("Trailer", "X-Sum")
		if r.URL.Query().Get("status") == "503" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write(body)
		w.Header().Set("X-Sum", http.StatusText(len(body)%600))
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	tb.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// h2cClient speaks h2c with prior knowledge.
func h2cClient(tb testing.TB) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, DialContext: dialer}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type answer struct {
	status        int
	method, path  string
	fuzz, sum     string
	body          string
	contentLength string
}

func roundTrip(c *http.Client, addr, method, path, hv string, body []byte) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("X-Fuzz", hv)
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, method: resp.Header.Get("X-Method"), path: resp.Header.Get("X-Path"),
		fuzz: resp.Header.Get("X-Fuzz"), sum: resp.Trailer.Get("X-Sum"), body: string(b),
		contentLength: resp.Header.Get("Content-Length")}, nil
}

// FuzzOracle: what a net/http h2c client gets through the proxy is what
// it gets from the app directly.
func FuzzOracle(f *testing.F) {
	f.Add("GET", "/", "v", []byte(nil))
	f.Add("POST", "/a/b?x=1&status=503", "a b", []byte("hello"))
	f.Add("PUT", "/%41%20?q", "", bytes.Repeat([]byte{'z'}, 200<<10))
	app := echoApp(f)
	p := egress(newClusterEject(0, app))
	p.Retriable = nil
	proxy := serve(f, p)
	c := h2cClient(f)
	f.Fuzz(func(t *testing.T, method, path, hv string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		want, err := roundTrip(c, app, method, path, hv, body)
		if err != nil {
			t.Skip(err) // not a request net/http sends
		}
		got, err := roundTrip(c, proxy, method, path, hv, body)
		if err != nil {
			t.Fatalf("through the proxy: %v (direct: %+v)", err, want)
		}
		if got != want {
			t.Fatalf("through the proxy %+v, direct %+v", got, want)
		}
	})
}

// frames builds a client's bytes after the preface.
type frames struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newFrames() *frames {
	f := &frames{}
	f.fr = http2.NewFramer(&f.buf, nil)
	f.fr.AllowIllegalWrites = true
	f.enc = hpack.NewEncoder(&f.hb)
	return f
}

func (f *frames) headers(id uint32, end bool, kv ...string) *frames {
	f.hb.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		f.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: f.hb.Bytes(), EndStream: end, EndHeaders: true})
	return f
}

var get = []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "svc"}

func req(extra ...string) []string { return append(append([]string(nil), get...), extra...) }

// FuzzFrames feeds arbitrary frames to the proxy as a client: it must not
// panic, and what it writes back must be well-formed HTTP/2.
func FuzzFrames(f *testing.F) {
	seed := func(fs *frames) { f.Add(fs.buf.Bytes()) }
	mk := func() *frames { fs := newFrames(); fs.fr.WriteSettings(); return fs }
	seed(mk().headers(1, true, get...))
	fs := mk().headers(1, false, req("content-length", "3")...)
	fs.fr.WriteData(1, true, []byte("abc"))
	seed(fs)
	fs = mk().headers(1, false, req("content-length", "5")...)
	fs.fr.WriteData(1, true, []byte("abc"))
	seed(fs)
	seed(mk().headers(1, true, req("connection", "close")...))
	seed(mk().headers(1, true, req("Upper", "x")...))
	seed(mk().headers(1, true, ":path", "/", ":method", "GET"))
	seed(mk().headers(2, true, get...))
	fs = mk()
	fs.fr.WriteData(3, true, []byte("x"))
	seed(fs)
	fs = mk().headers(1, false, req("te", "trailers", "content-type", "application/grpc")...)
	fs.fr.WriteData(1, false, []byte{0, 0, 0, 0, 1, 'x'})
	fs.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fs.fr.WriteWindowUpdate(0, 1<<31-1)
	fs.fr.WritePing(false, [8]byte{1})
	seed(fs.headers(1, true, get...))
	fs = mk().headers(1, false, get...)
	fs.fr.WriteData(1, false, make([]byte, 16384))
	fs.headers(1, true, "x-trailer", "1")
	fs.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	seed(fs)
	app := echoApp(f)
	proxy := serve(f, egress(newClusterEject(0, app)))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			c.Write([]byte(preface))
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		fr := http2.NewFramer(io.Discard, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.MaxHeaderListSize = 1 << 20
		for first := true; ; first = false {
			f, err := fr.ReadFrame()
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return
			}
			if err != nil {
				t.Fatalf("the proxy wrote a bad frame: %v", err)
			}
			if _, ok := f.(*http2.SettingsFrame); first && !ok {
				t.Fatalf("first frame %v, not SETTINGS", f.Header())
			}
			if id := f.Header().StreamID; id%2 == 0 && id != 0 {
				t.Fatalf("frame on server stream %d", id)
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok && h.PseudoValue("status") == "" && len(h.PseudoFields()) > 0 {
				t.Fatalf("response pseudo-headers %v", h.PseudoFields())
			}
		}
	})
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset by peer")
}
