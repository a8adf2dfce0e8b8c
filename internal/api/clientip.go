package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies is a list of CIDRs (API_TRUSTED_PROXIES, comma-separated, such as
// "10.0.0.0/8,2001:db8::/32"; a bare address is its own /32 or /128). Only
// a direct peer inside one of them may name the client in
// X-Forwarded-For.
type Proxies []netip.Prefix

// EnvDecode implements envconfig.Decoder: a bad CIDR is reported by the
// variable's name when the api starts.
func (p *Proxies) EnvDecode(val string) error {
	var out Proxies
	for s := range strings.SplitSeq(val, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		pre, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an address", s)
			}
			pre = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, pre.Masked())
	}
	*p = out
	return nil
}

func (p Proxies) contains(a netip.Addr) bool {
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request came from, for lockouts: the direct
// peer, unless the peer is a trusted proxy; then the rightmost
// X-Forwarded-For hop that is not itself a trusted proxy. The hops left of
// it are whatever the client wrote and are never used, so a client cannot
// pick its own lockout key by sending the header. ok is false when the
// peer's address does not parse (the raw RemoteAddr is used as the key).
func (p Proxies) clientAddr(r *http.Request) (netip.Addr, string, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, host, false
	}
	addr := peer.Unmap()
	if len(p) == 0 || !p.contains(addr) {
		return addr, "", true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		a, err := parseHop(h)
		if err != nil {
			// What the last trusted hop received from is unreadable: keep
			// that hop rather than trust anything further left.
			return addr, "", true
		}
		addr = a
		if !p.contains(a) {
			return addr, "", true
		}
	}
	return addr, "", true
}

// parseHop reads one X-Forwarded-For element: an address, optionally with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(h string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), nil
	}
	ap, err := netip.ParseAddrPort(h)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// sourceKey is the lockout key of a request's source: its client address
// (see clientAddr), or its /64 for IPv6 (one host usually holds a whole
// /64).
func (p Proxies) sourceKey(r *http.Request) string {
	addr, raw, ok := p.clientAddr(r)
	if !ok {
		return raw
	}
	if addr.Is6() {
		pre, _ := addr.Prefix(64)
		return pre.String()
	}
	return addr.String()
}
