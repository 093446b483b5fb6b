package nacos

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// A 1.x client asks for a service's instances with the UDP port it
// receives pushes on (instance/list's udpPort), and asks again every
// cacheMillis. Until its asks stop for udpTTL, each change of the
// service is pushed to it at once, as Nacos 1.x's PushService does: a
// datagram {"type":"dom","data":"<the list's JSON>","lastRefTime":N},
// gzipped past 1 KiB. The client acknowledges with "push-ack"; the
// acknowledgement is read and dropped (a lost push is made good by the
// client's next ask).
const udpTTL = 30 * time.Second

// udpTarget is a 1.x client's push address and its cluster filter. The
// address is the HTTP request's own (never the clientIP parameter), so
// no request can aim pushes elsewhere.
type udpTarget struct {
	addr     netip.AddrPort
	clusters string
}

// pushData is a 1.x push, as nacos-sdk-go's and the Java client's
// PushReceiver read it.
type pushData struct {
	Type        string `json:"type"`
	Data        string `json:"data"`
	LastRefTime int64  `json:"lastRefTime"`
}

// listenUDP opens the socket pushes go out from, on host. Pushes are
// off (logged) if it cannot.
func (s *Server) listenUDP(host string) {
	uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(parseAddr(host), 0)))
	if err != nil {
		s.log.Warn("no UDP pushes to 1.x clients: they poll", zap.Error(err))
		return
	}
	s.udp.Store(uc)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := uc.ReadFromUDP(buf); err != nil {
				return // closed
			}
		}
	}()
}

func parseAddr(host string) netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return a
	}
	return netip.IPv4Unspecified()
}

// udpSubscribe records that the client at remote asked for k with its
// push port.
func (s *Server) udpSubscribe(k key, remote string, port int, clusters string) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil || port < 1 || port > 65535 || s.udp.Load() == nil {
		return
	}
	t := udpTarget{addr: netip.AddrPortFrom(ap.Addr().Unmap(), uint16(port)), clusters: clusters}
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[k]; svc != nil {
		if svc.udp == nil {
			svc.udp = map[udpTarget]time.Time{}
		}
		svc.udp[t] = s.now().Add(udpTTL)
	}
}

// udpPush is one datagram to send.
type udpPush struct {
	to   netip.AddrPort
	data []byte
}

// udpPushesLocked builds the pushes of svc's change to its 1.x clients,
// forgetting those whose asks stopped. Server.mu is held.
func (s *Server) udpPushesLocked(svc *service) []udpPush {
	var out []udpPush
	now := s.now()
	for t, expiry := range svc.udp {
		if now.After(expiry) {
			delete(svc.udp, t)
			continue
		}
		list, err := json.Marshal(listOf(svc.key, s.infoLocked(svc, t.clusters)))
		if err != nil {
			continue
		}
		b, err := json.Marshal(pushData{Type: "dom", Data: string(list), LastRefTime: int64(svc.refTime)})
		if err != nil {
			continue
		}
		out = append(out, udpPush{to: t.addr, data: maybeGzip(b)})
	}
	return out
}

// sendUDP sends pushes; a failed send waits for the client's next ask.
func (s *Server) sendUDP(pushes []udpPush) {
	uc := s.udp.Load()
	if uc == nil {
		return
	}
	for _, p := range pushes {
		if _, err := uc.WriteToUDPAddrPort(p.data, p.to); err != nil {
			s.log.Debug("UDP push not sent", zap.String("addr", p.to.String()), zap.Error(err))
		}
	}
}

// maybeGzip compresses b past 1 KiB, as Nacos does (the clients look for
// gzip's magic bytes).
func maybeGzip(b []byte) []byte {
	if len(b) <= 1024 {
		return b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// udpPortOf reads instance/list's udpPort; 0 if absent or bad.
func udpPortOf(s string) int {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0
	}
	return p
}
