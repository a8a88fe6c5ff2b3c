//go:build !race

package icapd

const raceEnabled = false
