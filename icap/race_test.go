//go:build race

package icap_test

// raceEnabled is true when the tests run under the race detector, which
// makes every memory access several times slower: long streams are cut
// down so that the package still finishes well inside CI's budget.
const raceEnabled = true
