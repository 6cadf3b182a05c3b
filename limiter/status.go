package limiter

// ReqStatus is the value of nginx's $limit_req_status variable
// (ngx_http_limit_req_status in ngx_http_limit_req_module.c). The zero value,
// ReqStatusNone, means no limit_req applied to the request (every key was
// empty), for which nginx leaves the variable not found; String returns "".
type ReqStatus uint8

// $limit_req_status values, in nginx's order (NGX_HTTP_LIMIT_REQ_PASSED = 1 ...).
const (
	ReqStatusNone ReqStatus = iota
	ReqPassed
	ReqDelayed
	ReqRejected
	ReqDelayedDryRun
	ReqRejectedDryRun
)

var reqStatusNames = [...]string{"", "PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN"}

// String returns the variable's text, a static string (no allocation).
func (s ReqStatus) String() string {
	if int(s) < len(reqStatusNames) {
		return reqStatusNames[s]
	}
	return ""
}

// ConnStatus is the value of nginx's $limit_conn_status variable
// (ngx_http_limit_conn_status in ngx_http_limit_conn_module.c). The zero
// value, ConnStatusNone, means no limit_conn applied; String returns "".
type ConnStatus uint8

// $limit_conn_status values, in nginx's order.
const (
	ConnStatusNone ConnStatus = iota
	ConnPassed
	ConnRejected
	ConnRejectedDryRun
)

var connStatusNames = [...]string{"", "PASSED", "REJECTED", "REJECTED_DRY_RUN"}

// String returns the variable's text, a static string (no allocation).
func (s ConnStatus) String() string {
	if int(s) < len(connStatusNames) {
		return connStatusNames[s]
	}
	return ""
}

// Result is the outcome of one zone's decision for one key. The zero value,
// Declined, means the key was not limited at all.
type Result uint8

const (
	// Declined: the key is empty or longer than the zone accepts; nothing is
	// recorded. nginx skips such a limit ("continue" in the handler loop; the
	// over-long case is logged at error level by the caller).
	Declined Result = iota
	// Passed: accepted and accounted; no delay is needed.
	Passed
	// Delayed: accepted and accounted; the caller must hold the request for
	// ReqZone.DelayMs(excess, delay) milliseconds (unless dry run).
	Delayed
	// Held: returned by ReqZone.Lookup only. Within burst; the node is pinned
	// and not yet accounted until Hold.Commit, or unpinned by Hold.Release.
	Held
	// Busy: the burst is exceeded; reject. The node is not updated (NGX_BUSY).
	Busy
	// NoMemory: the zone is full and reclaim freed no room; reject. nginx logs
	// "could not allocate node" at alert level (NGX_ERROR).
	NoMemory
)

var resultNames = [...]string{"declined", "passed", "delayed", "held", "busy", "no memory"}

// String returns a static lower-case name, for logs and test failures.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "invalid"
}
