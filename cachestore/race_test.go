//go:build race

package cachestore

// The race detector adds allocations (and makes sync.Pool drop objects),
// so allocation counts are only asserted without it.
const raceEnabled = true
