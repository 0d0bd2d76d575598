package handlers_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/causerie/causerie/app/servertest"
)

// Requests with made-up methods and paths add no series to /metrics: labels come only from known values.
func TestMetricsLabelsAreBounded(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, nil)
	random := func(n int) string {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rand.IntN(len(letters))]
		}
		return string(b)
	}
	send := func(method, path string) {
		req, err := http.NewRequest(method, s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	series := func() int {
		n := 0
		for line := range strings.SplitSeq(s.Get(t, "/metrics"), "\n") {
			if strings.HasPrefix(line, "causerie_http_request") {
				n++
			}
		}
		return n
	}
	// Once each kind has been seen (an unknown method on a route, an unknown path), its series exist.
	send("BREW", "/api/me")
	send("BREW", "/api/rooms/x/messages")
	send("GET", "/nowhere/"+random(8))
	send("PURGE", "/nowhere/"+random(8))
	series() // the scrape itself is counted once it is answered
	before := series()
	for i := range 1000 {
		path := "/_" + random(1+i%40) // no route starts so: "/ws" would be a route's series, seen once
		if i%3 == 0 {
			path = "/api/rooms/" + random(10) + "/messages?token=" + random(20)
		}
		send(strings.ToUpper(random(3+i%20)), path)
	}
	if after := series(); after != before {
		t.Errorf("1,000 requests with made-up methods and paths took /metrics from %d to %d request series", before, after)
	}
	if m := s.Get(t, "/metrics"); !strings.Contains(m, `method="other"`) || !strings.Contains(m, `route="unmatched"`) {
		t.Error(`no series for method="other" or route="unmatched"`)
	}
}
