package respond

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Export formats.
const (
	FormatNginx     = "nginx"     // "deny ADDR;" lines, for an include file
	FormatIPTables  = "iptables"  // iptables-restore input, IPv4 only: chain VIGIL
	FormatIP6Tables = "ip6tables" // ip6tables-restore input, IPv6 only: chain VIGIL
	FormatIPSet     = "ipset"     // ipset restore input: sets vigil4 and vigil6 (hash:net), swapped in atomically
	FormatNFTables  = "nftables"  // nft -f input: table inet vigil, sets banned4 and banned6, a drop rule
	FormatPlain     = "plain"     // one address or range per line
)

// Formats lists the export formats.
var Formats = []string{FormatNginx, FormatIPTables, FormatIP6Tables, FormatIPSet, FormatNFTables, FormatPlain}

// Names used in the firewall exports.
const (
	IPTablesChain = "VIGIL"
	IPSet4        = "vigil4"
	IPSet6        = "vigil6"
	NFTTable      = "vigil" // family inet
	// IPSetMaxElem is the maxelem of the ipset sets: fixed, so that
	// "ipset -exist restore" can run again over sets it created before.
	IPSetMaxElem = 1 << 20
)

// ExportPrefixes returns the addresses and ranges of the ip and range
// decisions among ds, sorted (IPv4 first), with those inside another left
// out: the firewall formats refuse or warn about overlaps. User decisions
// are left out.
func ExportPrefixes(ds []Decision) []netip.Prefix {
	var ps []netip.Prefix
	for _, d := range ds {
		switch d.Scope {
		case ScopeIP:
			if ip, err := netip.ParseAddr(d.Value); err == nil {
				ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
			}
		case ScopeRange:
			if p, err := netip.ParsePrefix(d.Value); err == nil {
				ps = append(ps, p.Masked())
			}
		}
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	// Sorted so, a range comes just before the prefixes it holds.
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// prefixString writes a single address without its /32 or /128.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Export writes the ip and range decisions among ds in format. what
// describes them for the comment on top ("bans"); now dates it.
func Export(w io.Writer, format string, ds []Decision, what string, now time.Time) error {
	ps := ExportPrefixes(ds)
	var v4, v6 []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	bw := bufio.NewWriter(w)
	header := func(n int) {
		fmt.Fprintf(bw, "# Vigil decisions (%s): %d address(es) and range(s), exported %s\n", what, n, now.UTC().Format(time.RFC3339))
	}
	switch format {
	case FormatPlain:
		for _, p := range ps {
			fmt.Fprintln(bw, prefixString(p))
		}
	case FormatNginx:
		header(len(ps))
		for _, p := range ps {
			fmt.Fprintf(bw, "deny %s;\n", prefixString(p))
		}
	case FormatIPTables, FormatIP6Tables:
		list := v4
		if format == FormatIP6Tables {
			list = v6
		}
		header(len(list))
		fmt.Fprintf(bw, "*filter\n:%s - [0:0]\n", IPTablesChain)
		for _, p := range list {
			fmt.Fprintf(bw, "-A %s -s %s -j DROP\n", IPTablesChain, p)
		}
		fmt.Fprintln(bw, "COMMIT")
	case FormatIPSet:
		header(len(ps))
		for _, s := range []struct {
			name, family string
			list         []netip.Prefix
		}{{IPSet4, "inet", v4}, {IPSet6, "inet6", v6}} {
			next := s.name + "-next"
			opts := fmt.Sprintf("hash:net family %s hashsize 1024 maxelem %d", s.family, IPSetMaxElem)
			fmt.Fprintf(bw, "create %s %s\ncreate %s %s\nflush %s\n", s.name, opts, next, opts, next)
			for _, p := range s.list {
				fmt.Fprintf(bw, "add %s %s\n", next, prefixString(p))
			}
			fmt.Fprintf(bw, "swap %s %s\ndestroy %s\n", next, s.name, next)
		}
	case FormatNFTables:
		header(len(ps))
		// Declaring then deleting the table makes the file replace it
		// whole, in one transaction, whether or not it existed.
		fmt.Fprintf(bw, "table inet %s\ndelete table inet %s\ntable inet %s {\n", NFTTable, NFTTable, NFTTable)
		for _, s := range []struct {
			name, typ string
			list      []netip.Prefix
		}{{"banned4", "ipv4_addr", v4}, {"banned6", "ipv6_addr", v6}} {
			fmt.Fprintf(bw, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", s.name, s.typ)
			if len(s.list) > 0 {
				elems := make([]string, len(s.list))
				for i, p := range s.list {
					elems[i] = prefixString(p)
				}
				fmt.Fprintf(bw, "\t\telements = {\n\t\t\t%s\n\t\t}\n", strings.Join(elems, ",\n\t\t\t"))
			}
			fmt.Fprintf(bw, "\t}\n")
		}
		fmt.Fprintf(bw, "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n")
		fmt.Fprintf(bw, "\t\tip saddr @banned4 drop\n\t\tip6 saddr @banned6 drop\n\t}\n}\n")
	default:
		return fmt.Errorf("export format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	return bw.Flush()
}
