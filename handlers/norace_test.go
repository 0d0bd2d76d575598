//go:build !race

package handlers_test

// underRace is set when the tests run with the race detector, which costs them several times the CPU.
const underRace = false
