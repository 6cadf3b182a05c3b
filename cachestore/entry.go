package cachestore

import (
	"sync/atomic"
	"time"
)

// Status is the outcome of a lookup, named like $upstream_cache_status.
type Status uint8

const (
	// Miss: no usable entry (absent, another key with the same hash,
	// purged, or inactive for longer than the zone's inactive=).
	Miss Status = iota
	// Hit: a fresh entry.
	Hit
	// Expired: an entry past its lifetime. The caller may serve it under
	// proxy_cache_use_stale (see Entry.StaleWhileUpdating/StaleOnError) or
	// revalidate it with its ETag/Last-Modified (proxy_cache_revalidate).
	Expired
	// Vary: the key holds responses that vary by request headers; Lookup
	// resolves it. Only Get returns it, with the marker entry whose
	// VaryNames say which request headers form the variant.
	Vary
)

var statusNames = [...]string{"MISS", "HIT", "EXPIRED", "VARY"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "UNKNOWN"
}

// entryOverhead is what one entry costs beyond its byte slices: the Entry
// struct (~200 B), ristretto's store and policy records (~170 B per item,
// its docs), and our index map slot.
const entryOverhead = 448

// EntrySpec describes a response to cache; NewEntry copies it. The zero
// value is an empty 0-status response, which is useless but harmless.
type EntrySpec struct {
	// Key is the proxy_cache_key value (the primary key).
	Key []byte
	// Status is the response status code.
	Status int
	// Head is the pre-rendered header block the pipeline writes on a hit:
	// "Name: value\r\n" lines, without the status line, Date, Server and
	// Connection, which the pipeline adds per request.
	Head []byte
	// Body is the complete response body (Content-Length is len(Body)).
	Body []byte
	// StoredAt is the time the response was received.
	StoredAt time.Time
	// Decision is Evaluate's verdict; its TTL sets the freshness lifetime
	// from StoredAt, its stale windows and MustRevalidate the stale rules.
	Decision Decision
	// ETag and LastModified are the response's validators, kept as sent.
	ETag, LastModified []byte
	// VaryNames is the response's Vary (NormalizeVary); nil if none or if
	// proxy_ignore_headers Vary. Variant is the request's secondary key
	// (AppendVariant over VaryNames); both are set together.
	VaryNames, Variant []byte
	// AcceptRanges: the response had an Accept-Ranges header, which is
	// what lets nginx serve byte ranges of a cached response
	// (ngx_http_upstream_copy_allow_ranges). Head should then not carry
	// the header: the range filter adds "Accept-Ranges: bytes" to 200s.
	AcceptRanges bool
}

// Entry is one cached response. It is immutable once built by NewEntry (the
// only mutable state is the last-access time and the purged flag, both
// atomic), so any number of goroutines may read it concurrently, also after
// it has left the zone. The byte slices returned by its methods must not be
// modified. The zero value is not usable; build entries with NewEntry.
type Entry struct {
	key        []byte // full stored key: primary, or primary+0+variant
	primaryLen int
	hash       uint64 // Hash(key)
	status     int
	head, body []byte
	etag, lm   []byte
	varyNames  []byte

	storedAt, validUntil   int64 // unix nanoseconds
	staleUpdatingUntil     int64
	staleErrorUntil        int64
	mustRevalidate, marker bool
	acceptRanges           bool
	size                   int64

	marker2 *Entry // for a variant: the marker to store under the primary key

	lastAccess atomic.Int64 // unix nanoseconds, updated at most once a second
	dead       atomic.Bool  // purged or replaced
}

// NewEntry builds an immutable entry from spec, copying every byte slice
// into one allocation so that the caller may reuse (or pool) its buffers.
// With VaryNames set it also builds the marker stored under the primary
// key. Any goroutine may call it.
func NewEntry(spec EntrySpec) *Entry {
	klen := len(spec.Key)
	if spec.VaryNames != nil {
		klen += 1 + len(spec.Variant)
	}
	n := klen + len(spec.Head) + len(spec.Body) + len(spec.ETag) + len(spec.LastModified) + len(spec.VaryNames)
	buf := make([]byte, 0, n)
	take := func(parts ...[]byte) []byte {
		s := len(buf)
		for _, p := range parts {
			buf = append(buf, p...)
		}
		return buf[s:len(buf):len(buf)]
	}
	e := &Entry{status: spec.Status, primaryLen: len(spec.Key), acceptRanges: spec.AcceptRanges}
	if spec.VaryNames != nil {
		e.key = take(spec.Key, []byte{0}, spec.Variant)
	} else {
		e.key = take(spec.Key)
	}
	e.head = take(spec.Head)
	e.body = take(spec.Body)
	e.etag = take(spec.ETag)
	e.lm = take(spec.LastModified)
	e.varyNames = take(spec.VaryNames)
	if spec.VaryNames == nil {
		e.varyNames = nil
	}
	e.hash = Hash(e.key)
	at := spec.StoredAt.UnixNano()
	d := spec.Decision
	e.storedAt = at
	e.validUntil = at + int64(d.TTL)
	e.staleUpdatingUntil = e.validUntil + int64(d.StaleWhileRevalidate)
	e.staleErrorUntil = e.validUntil + int64(d.StaleIfError)
	e.mustRevalidate = d.MustRevalidate
	e.size = int64(n) + entryOverhead
	e.lastAccess.Store(at)
	if spec.VaryNames != nil {
		m := &Entry{
			key:        e.key[:len(spec.Key):len(spec.Key)],
			primaryLen: len(spec.Key),
			varyNames:  e.varyNames,
			marker:     true,
			storedAt:   at,
			size:       int64(len(spec.Key)+len(spec.VaryNames)) + entryOverhead,
		}
		m.hash = Hash(m.key)
		m.lastAccess.Store(at)
		e.marker2 = m
	}
	return e
}

// Key is the stored key (for a variant: primary key, a 0 byte, variant).
func (e *Entry) Key() []byte { return e.key }

// PrimaryKey is the proxy_cache_key part of Key.
func (e *Entry) PrimaryKey() []byte { return e.key[:e.primaryLen] }

// Status is the response status code (0 for a Vary marker).
func (e *Entry) Status() int { return e.status }

// Head is the pre-rendered header lines.
func (e *Entry) Head() []byte { return e.head }

// Body is the response body.
func (e *Entry) Body() []byte { return e.body }

// ContentLength is len(Body()).
func (e *Entry) ContentLength() int64 { return int64(len(e.body)) }

// ETag is the response's ETag as sent, nil if none.
func (e *Entry) ETag() []byte { return e.etag }

// LastModified is the response's Last-Modified as sent, nil if none.
func (e *Entry) LastModified() []byte { return e.lm }

// AcceptRanges reports whether byte ranges may be served from the entry
// (see EntrySpec.AcceptRanges).
func (e *Entry) AcceptRanges() bool { return e.acceptRanges }

// VaryNames is the normalised Vary list, nil when the response has none.
func (e *Entry) VaryNames() []byte { return e.varyNames }

// StoredAt is when the response was received.
func (e *Entry) StoredAt() time.Time { return time.Unix(0, e.storedAt) }

// ValidUntil is the end of the freshness lifetime (nginx's valid_sec).
func (e *Entry) ValidUntil() time.Time { return time.Unix(0, e.validUntil) }

// Age is the entry's age at now, for the Age header (RFC 9111 5.1).
func (e *Entry) Age(now time.Time) time.Duration {
	return max(0, time.Duration(now.UnixNano()-e.storedAt))
}

// Size is what the entry counts against max_size.
func (e *Entry) Size() int64 { return e.size }

// MustRevalidate reports must-revalidate, proxy-revalidate or s-maxage.
func (e *Entry) MustRevalidate() bool { return e.mustRevalidate }

// Fresh reports whether the entry is within its lifetime at now.
func (e *Entry) Fresh(now time.Time) bool { return now.UnixNano() < e.validUntil }

// StaleWhileUpdating reports whether an expired entry may be served while
// another request updates it, as nginx decides for NGX_HTTP_CACHE_UPDATING:
// proxy_cache_use_stale updating (useStale) or within the response's
// stale-while-revalidate window (c->stale_updating). Unlike nginx,
// useStale does not apply to an entry with MustRevalidate (RFC 9111 4.2.4).
func (e *Entry) StaleWhileUpdating(now time.Time, useStale bool) bool {
	n := now.UnixNano()
	return n <= e.staleUpdatingUntil || (useStale && !e.mustRevalidate)
}

// StaleOnError reports whether an expired entry may be served because the
// upstream failed, as ngx_http_upstream_next decides: the failure is listed
// in proxy_cache_use_stale (useStale) or now is within the response's
// stale-if-error window (c->stale_error). MustRevalidate as above.
func (e *Entry) StaleOnError(now time.Time, useStale bool) bool {
	n := now.UnixNano()
	return n <= e.staleErrorUntil || (useStale && !e.mustRevalidate)
}

// Refresh returns a copy of e that is fresh again from at, with d's
// lifetime and stale windows: what a 304 answering a revalidation
// (proxy_cache_revalidate) makes of the stored response. As in nginx
// (ngx_http_upstream_test_next → ngx_http_file_cache_update_header), the
// stored status, head and body are kept; only the timing changes, and the
// age restarts at at (r->cache->date = now). The copy shares e's immutable
// byte slices, so it costs one small allocation. It is not stored: pass it
// to Zone.Set. A marker (Vary) entry is returned unchanged.
func (e *Entry) Refresh(at time.Time, d Decision) *Entry {
	if e.marker {
		return e
	}
	n := &Entry{
		key: e.key, primaryLen: e.primaryLen, hash: e.hash, status: e.status,
		head: e.head, body: e.body, etag: e.etag, lm: e.lm, varyNames: e.varyNames,
		size: e.size, marker2: e.marker2, acceptRanges: e.acceptRanges,
	}
	t := at.UnixNano()
	n.storedAt = t
	n.validUntil = t + int64(d.TTL)
	n.staleUpdatingUntil = n.validUntil + int64(d.StaleWhileRevalidate)
	n.staleErrorUntil = n.validUntil + int64(d.StaleIfError)
	n.mustRevalidate = d.MustRevalidate
	n.lastAccess.Store(t)
	return n
}
