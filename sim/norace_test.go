//go:build !race

package sim

// raceEnabled reports a -race build (see TestMain).
const raceEnabled = false
