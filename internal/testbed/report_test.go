package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLastReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.log")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	if r, err := LastReport(path); err != nil || r != (Report{}) {
		t.Errorf("empty log: %+v, %v", r, err)
	}
	write("greeter-client: ok=1 failed=0 mesh=true via=127.0.0.2:30000 from=127.0.0.3:50051\n" +
		"2026/11/22 04:17:39 greeter-client: call failed: rpc error\n" +
		"greeter-client: ok=99 failed=1 mesh=false via=127.0.0.3:50051 from=127.0.0.3:50051\n")
	want := Report{OK: 99, Failed: 1, Mesh: false, Via: "127.0.0.3:50051", From: "127.0.0.3:50051"}
	if r, _ := LastReport(path); r != want {
		t.Errorf("last line: %+v, want %+v", r, want)
	}
	write("dubbo-client: ok=5 failed=1 mesh=false via=- from=provider-B inflight=3\n")
	if r, _ := LastReport(path); r != (Report{OK: 5, Failed: 1, Via: "-", From: "provider-B", Inflight: 3}) {
		t.Errorf("line with inflight: %+v", r)
	}
	write("greeter-client: ok=5 failed=0 mesh=true via=a from=b\ngreeter-client: total ok=7 failed=2\n")
	if r, _ := LastReport(path); r != (Report{OK: 7, Failed: 2, Final: true}) {
		t.Errorf("total line: %+v", r)
	}
	if _, err := LastReport(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing log: no error")
	}
}
