//go:build race

package route

// The race detector makes sync.Pool drop objects at random, so regexp's
// pooled matchers are reallocated; allocation counts are only asserted
// without -race.
const raceEnabled = true
