package observe

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSniffer(t *testing.T) {
	var out bytes.Buffer
	s := &Sniffer{W: &out}
	for _, tc := range []struct {
		writes []string
		want   int
	}{
		{[]string{"HTTP/1.1 200 OK\r\n\r\n"}, 200},
		{[]string{"HTT", "P/1.1 5", "03 x\r\n\r\n"}, 503},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 404 Not Found\r\n\r\n"}, 404},
		{[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\n"}, 201},
		{[]string{"HTTP/1.1 429 x", "HTTP/1.1 200"}, 429}, // the body is not a head
	} {
		s.Reset()
		for _, w := range tc.writes {
			s.Write([]byte(w))
		}
		if s.Status() != tc.want {
			t.Errorf("%q: %d, want %d", tc.writes, s.Status(), tc.want)
		}
	}
}

func TestWrapAndLog(t *testing.T) {
	var log bytes.Buffer
	o, err := New(&log, Full, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := o.Listener("web", "egress")
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/grpc" {
			w.Header().Set(http.TrailerPrefix+"Grpc-Status", "8")
			w.Write([]byte("x"))
			return
		}
		http.Error(w, "no", http.StatusTeapot)
	}))
	for _, p := range []string{"/a", "/grpc"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	o.Flush()
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", log.String())
	}
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["status"] != 418.0 || first["service"] != "web" || first["direction"] != "egress" || second["grpc_status"] != "8" {
		t.Fatalf("lines: %v %v", first, second)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(o.Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 6 {
		t.Fatalf("gathered %v %v, want 6 series (every outcome of one listener)", mfs, err)
	}
	counts := map[string]uint64{}
	for _, m := range mfs[0].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "outcome" {
				counts[lp.GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if counts["4xx"] != 1 || counts["grpc_error"] != 1 || counts["2xx"] != 0 {
		t.Fatalf("histogram counts %v", counts)
	}
	for _, bad := range []struct {
		mode   string
		sample float64
	}{{"some", 0}, {Sampled, 0}, {Sampled, 2}} {
		if _, err := New(&log, bad.mode, bad.sample); err == nil {
			t.Errorf("%q %v accepted", bad.mode, bad.sample)
		}
	}
	// Sampled at 1 logs all, off none.
	log.Reset()
	o2, _ := New(&log, Off, 0)
	o2.Listener("s", "ingress").Done(Request{Status: 200}, time.Now())
	if log.Len() != 0 {
		t.Fatal("off logged")
	}
}

// FuzzLine: whatever a request carries, its line is one valid JSON object.
func FuzzLine(f *testing.F) {
	f.Add("/a\"b\\c", "GET", "\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, path, method, remote string) {
		var log bytes.Buffer
		o, _ := New(&log, Full, 0)
		o.Listener("s", "egress").Done(Request{Method: method, Path: path, Remote: remote, Status: 200}, time.Now())
		o.Close()
		line := bytes.TrimSuffix(log.Bytes(), []byte("\n"))
		var m map[string]any
		if bytes.Count(line, []byte("\n")) != 0 || json.Unmarshal(line, &m) != nil {
			t.Fatalf("not one JSON line: %q", log.Bytes())
		}
	})
}

// BenchmarkDone: what a request pays for the histogram, and for the
// histogram and a full access-log line (buffered, written to io.Discard).
func BenchmarkDone(b *testing.B) {
	for _, mode := range []string{Off, Full} {
		b.Run(mode, func(b *testing.B) {
			o, _ := New(io.Discard, mode, 0)
			l := o.Listener("web", "egress")
			r := Request{Method: "GET", Path: "/hello", Proto: "HTTP/1.1", Remote: "127.0.0.1:40000", Status: 200}
			b.ReportAllocs()
			for b.Loop() {
				l.Done(r, time.Now())
			}
		})
	}
}
