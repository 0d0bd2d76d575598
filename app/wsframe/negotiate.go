package wsframe

import "strings"

// DeflateResponse is the Sec-WebSocket-Extensions value that accepts permessage-deflate without context
// takeover either way: every message is compressed on its own, so neither side keeps a 32 KiB window per
// connection (RFC 7692 section 7.1.1).
const DeflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// OffersDeflate reports whether the Sec-WebSocket-Extensions values of a handshake hold a
// permessage-deflate offer this package can accept. It refuses an offer with unknown or repeated
// parameters, as RFC 7692 asks, and one that limits the server's window below 32 KiB, which
// compress/flate cannot do.
func OffersDeflate(headers []string) bool {
	for _, h := range headers {
		for offer := range strings.SplitSeq(h, ",") {
			if acceptable(offer) {
				return true
			}
		}
	}
	return false
}

func acceptable(offer string) bool {
	params := strings.Split(offer, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return false
	}
	seen := map[string]bool{}
	for _, p := range params[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if seen[name] {
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return false
			}
		case "client_max_window_bits":
			if hasValue && !windowBits(value) {
				return false
			}
		case "server_max_window_bits":
			if value != "15" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func windowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
