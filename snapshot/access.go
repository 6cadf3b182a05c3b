package snapshot

import (
	"net/netip"
	"strings"

	"edgeproxy/config"
)

// AccessRule is one allow/deny (ngx_http_access_module), checked in order;
// the first rule matching the client address decides.
type AccessRule struct {
	Deny   bool
	All    bool
	Prefix netip.Prefix
	Unix   bool // "unix:" matches unix-socket clients
}

func (c *compiler) accessRule(d *config.Directive, loc *Location, first bool) error {
	if first {
		loc.Access = nil
	}
	r := AccessRule{Deny: d.Name == "deny"}
	a := d.Args[0]
	switch {
	case a == "all":
		r.All = true
	case a == "unix:":
		r.Unix = true
	case strings.Contains(a, "/"):
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return errAt(d, "invalid parameter %q", a)
		}
		if p.Masked() != p {
			c.note(d, "low address bits of "+a+" are meaningless")
			p = p.Masked()
		}
		r.Prefix = p
	default:
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return errAt(d, "invalid parameter %q", a)
		}
		r.Prefix = netip.PrefixFrom(ip, ip.BitLen())
	}
	loc.Access = append(loc.Access, r)
	return nil
}
