package handlers

import "net/netip"

// addrKey is what per-address limits count by: the client's address, or, for IPv6, its /64, which one
// host commonly holds whole (each of its addresses would otherwise get a limit of its own).
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64) // 64 bits of an IPv6 address always make a prefix
	return p.String()
}
