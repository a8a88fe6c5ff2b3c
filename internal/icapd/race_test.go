//go:build race

package icapd

// raceEnabled is true when the tests run under the race detector, whose
// shadow memory multiplies the process's resident size: memory bounds
// are then reported, not enforced.
const raceEnabled = true
