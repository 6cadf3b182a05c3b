package limiter

import "sync/atomic"

// ReqStats counts a limit_req zone's decisions (for metrics): the request's
// final $limit_req_status is counted on the zone that decided it (the one
// that rejected, or imposed the longest delay, or the last one that passed
// it). Atomic adds only.
type ReqStats struct {
	Passed, Delayed, Rejected, DelayedDryRun, RejectedDryRun uint64
}

type reqCounters struct {
	n [6]atomic.Uint64 // indexed by ReqStatus
	_ [16]byte
}

func (c *reqCounters) count(s ReqStatus) {
	if int(s) < len(c.n) {
		c.n[s].Add(1)
	}
}

// Stats reads the zone's decision counters. Any goroutine.
func (z *ReqZone) Stats() ReqStats {
	c := &z.stats
	return ReqStats{
		Passed: c.n[ReqPassed].Load(), Delayed: c.n[ReqDelayed].Load(), Rejected: c.n[ReqRejected].Load(),
		DelayedDryRun: c.n[ReqDelayedDryRun].Load(), RejectedDryRun: c.n[ReqRejectedDryRun].Load(),
	}
}

// ConnStats counts a limit_conn zone's Acquire results.
type ConnStats struct {
	Passed, Rejected uint64
}

// Stats reads the zone's counters. Any goroutine.
func (z *ConnZone) Stats() ConnStats {
	return ConnStats{Passed: z.passed.Load(), Rejected: z.rejected.Load()}
}
