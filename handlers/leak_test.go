package handlers_test

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. Its tests mostly wait on clocks
// (rate limits, deadlines, the exchange between nodes), a quarter of a core each: six run at once,
// rather than go test's default of one per core, unless -parallel says otherwise or the race detector
// runs, which leaves the clock-bound ones short of CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	if !isSet("test.parallel") && !underRace {
		_ = flag.Set("test.parallel", "6")
	}
	goleak.VerifyTestMain(m)
}

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
