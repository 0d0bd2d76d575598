package handlers_test

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. Its tests mostly wait on clocks
// (rate limits, deadlines, the exchange between nodes), a quarter of a core each: more of them run at
// once than go test's default of one per core, unless -parallel says otherwise.
func TestMain(m *testing.M) {
	flag.Parse()
	if !isSet("test.parallel") {
		_ = flag.Set("test.parallel", "8")
	}
	goleak.VerifyTestMain(m)
}

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
