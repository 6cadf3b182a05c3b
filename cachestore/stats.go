package cachestore

import "sync/atomic"

// ResponseStatuses are the $upstream_cache_status values counted by
// CountResponse, in the order of ResponseCounts.
var ResponseStatuses = [...]string{"HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "BYPASS"}

// respStripe is one cache line of response counters.
type respStripe struct {
	n [len(ResponseStatuses)]atomic.Uint64
	_ [8]byte
}

// CountResponse counts one response served through the zone by its
// $upstream_cache_status (for metrics); hash (the key's) picks the stripe.
// Atomic add only.
func (z *Zone) CountResponse(hash uint64, status string) {
	for i, s := range ResponseStatuses {
		if s == status {
			z.resp[hash&15].n[i].Add(1)
			return
		}
	}
}

// ResponseCounts sums the response counters, indexed like ResponseStatuses.
func (z *Zone) ResponseCounts() (n [len(ResponseStatuses)]uint64) {
	for i := range z.resp {
		for j := range n {
			n[j] += z.resp[i].n[j].Load()
		}
	}
	return n
}
