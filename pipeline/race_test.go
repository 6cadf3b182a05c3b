//go:build race

package pipeline

// The race detector makes sync.Pool drop objects at random, so allocation
// counts are only meaningful without it.
const raceEnabled = true
