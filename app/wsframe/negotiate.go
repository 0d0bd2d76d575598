package wsframe

import "strings"

// deflateResponse is the Sec-WebSocket-Extensions value that accepts permessage-deflate without context
// takeover either way: every message is compressed on its own, so neither side keeps a 32 KiB window per
// connection (RFC 7692 section 7.1.1).
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// NegotiateDeflate picks, from the Sec-WebSocket-Extensions values of a handshake, the first
// permessage-deflate offer this package can accept, and returns the value to answer with. It refuses an
// offer with unknown or repeated parameters, as RFC 7692 asks, and one that limits the server's window below
// 32 KiB, which compress/flate cannot do.
func NegotiateDeflate(headers []string) (response string, ok bool) {
	for _, h := range headers {
		for offer := range strings.SplitSeq(h, ",") {
			if ok, window := acceptable(offer); ok {
				if window { // accepting a server_max_window_bits offer means answering with it (section 7.1.2.1)
					return deflateResponse + "; server_max_window_bits=15", true
				}
				return deflateResponse, true
			}
		}
	}
	return "", false
}

// acceptable reports whether offer can be accepted, and whether it names server_max_window_bits.
func acceptable(offer string) (ok, window bool) {
	params := strings.Split(offer, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return false, false
	}
	seen := map[string]bool{}
	for _, p := range params[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if seen[name] {
			return false, false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return false, false
			}
		case "client_max_window_bits":
			if hasValue && !windowBits(value) {
				return false, false
			}
		case "server_max_window_bits":
			if value != "15" {
				return false, false
			}
		default:
			return false, false
		}
	}
	return true, seen["server_max_window_bits"]
}

func windowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}
