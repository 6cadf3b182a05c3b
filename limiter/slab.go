package limiter

import "math"

// This file holds the per-shard storage shared by ReqZone and ConnZone: a
// fixed arena of 64-bit words carved into nodes by a page-based slab
// allocator, plus an open-addressing index from key hash to node.
//
// Why a slab and not a Go map of structs: nginx bounds a zone by the bytes of
// its shared-memory slab pool (ngx_slab_alloc_locked in ngx_http_limit_req_lookup
// and ngx_http_limit_conn_handler), and "zone full" is an observable behaviour
// (forced LRU eviction, then 503 "could not allocate node"). Reproducing it
// needs storage whose capacity is a function of the configured size and whose
// steady state performs no Go allocations. Like ngx_slab.c, pages are handed to
// one size class at a time and return to the free pool once all their slots
// are free, so a change in key lengths does not fragment the zone forever.

const (
	pageWords     = 512           // 4 KiB pages, ngx_pagesize on common platforms
	pageBytes     = pageWords * 8 //
	maxSmallWords = pageWords / 2 // bigger nodes take whole pages (ngx_slab_max_size is half a page too)

	// pageMetaBytes is what one page's bookkeeping costs, counted against the
	// zone size so that the documented capacity is honest.
	pageMetaBytes = 24

	pageFree      = 0xff // page belongs to no class
	pageLargeHead = 0xfe // first page of a multi-page node
	pageLargeTail = 0xfd // following pages of a multi-page node

	noPage = -1
)

// classWords are the slot sizes, in words, of the small size classes. The
// steps are finer than ngx_slab's powers of two so that the common keys
// ($binary_remote_addr: 4 or 16 bytes) waste nothing.
var classWords = [...]uint16{3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256}

const numClasses = len(classWords)

// classOf maps a node size in words (<= maxSmallWords) to its size class.
var classOf [maxSmallWords + 1]uint8

func init() {
	c := 0
	for w := range classOf {
		for int(classWords[c]) < w {
			c++
		}
		classOf[w] = uint8(c)
	}
}

func slotsPerPage(class uint8) uint16 { return uint16(pageWords / int(classWords[class])) }

type page struct {
	class uint8  // size class, pageFree, pageLargeHead or pageLargeTail
	live  uint16 // allocated slots (small classes)
	bump  uint16 // slots ever handed out since the page joined its class
	free  uint32 // off+1 of the first freed slot; the list is threaded through arena[off]
	run   uint32 // pages in the node (pageLargeHead only)
	prev  int32  // partial-page list of the class
	next  int32
}

// table is one shard's storage. It is not safe for concurrent use; the owning
// shard's mutex guards it.
//
// Node layout in the arena: word 0 is the key's 64-bit hash, word 1 is
// "meta" (low 32 bits: a per-zone counter, bits 32..47: key length), then
// hdr-2 zone-specific words, then the key packed little-endian into words.
type table struct {
	arena   []uint64
	pages   []page
	partial [numClasses]int32 // head of the list of pages with a free slot
	index   []uint64          // 0 = empty; else uint32(hash)<<32 | off+1
	hdr     uint32            // header words before the key
	live    int               // nodes allocated
}

// tableGeometry returns how many pages and index slots fit in budget bytes for
// nodes whose smallest possible size is minWords. The index is sized for the
// maximum node count at load factor 3/4 so it never needs to grow.
func tableGeometry(budget int64, minWords int) (pages, slots int) {
	perPage := int64(slotsPerPage(classOf[minWords]))
	pages = int(budget / pageCost(minWords))
	if pages < 1 {
		pages = 1
	}
	slots = int(int64(pages)*perPage*4/3) + 1
	return pages, slots
}

// pageCost is the zone bytes one page costs: the page, its bookkeeping and
// the index slots for the most nodes it can hold.
func pageCost(minWords int) int64 {
	perPage := int64(slotsPerPage(classOf[minWords]))
	return int64(pageBytes+pageMetaBytes) + (perPage*4/3+1)*8
}

func newTable(budget int64, hdr int) table {
	pages, slots := tableGeometry(budget, hdr+1)
	t := table{
		arena: make([]uint64, pages*pageWords),
		pages: make([]page, pages),
		index: make([]uint64, slots),
		hdr:   uint32(hdr),
	}
	for i := range t.pages {
		t.pages[i].class = pageFree
	}
	for c := range t.partial {
		t.partial[c] = noPage
	}
	return t
}

func keyWords(n int) int { return (n + 7) >> 3 }

// home is the preferred index slot of a hash (Lemire's multiply-shift range
// reduction; the index length need not be a power of two).
func (t *table) home(h32 uint32) int {
	return int((uint64(h32) * uint64(len(t.index))) >> 32)
}

// find looks key up. When absent it returns the empty slot where it would be
// inserted (valid until the next removal).
func (t *table) find(key []byte, h uint64) (off uint32, pos int, found bool) {
	tag := uint64(uint32(h)) << 32
	i := t.home(uint32(h))
	n := len(t.index)
	for {
		s := t.index[i]
		if s == 0 {
			return 0, i, false
		}
		if s&^math.MaxUint32 == tag {
			o := uint32(s) - 1
			if t.arena[o] == h && t.keyEqual(o, key) {
				return o, i, true
			}
		}
		if i++; i == n {
			i = 0
		}
	}
}

func (t *table) emptySlot(h uint64) int {
	i := t.home(uint32(h))
	for t.index[i] != 0 {
		if i++; i == len(t.index) {
			i = 0
		}
	}
	return i
}

func (t *table) keyLen(off uint32) int { return int(uint16(t.arena[off+1] >> 32)) }

// keyEqual compares the full key, so two keys with the same hash are never
// merged into one client.
func (t *table) keyEqual(off uint32, key []byte) bool {
	if t.keyLen(off) != len(key) {
		return false
	}
	w := t.arena[off+t.hdr : off+t.hdr+uint32(keyWords(len(key)))]
	i := 0
	for ; len(key)-i*8 >= 8; i++ {
		if w[i] != le64(key[i*8:]) {
			return false
		}
	}
	if i < len(w) {
		return w[i] == leTail(key[i*8:])
	}
	return true
}

// setKey copies key into the node; the caller's slice is never retained.
func (t *table) setKey(off uint32, key []byte) {
	w := t.arena[off+t.hdr : off+t.hdr+uint32(keyWords(len(key)))]
	i := 0
	for ; len(key)-i*8 >= 8; i++ {
		w[i] = le64(key[i*8:])
	}
	if i < len(w) {
		w[i] = leTail(key[i*8:])
	}
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func leTail(b []byte) uint64 {
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// nodeWords is the node size for a key of n bytes.
func (t *table) nodeWords(n int) int { return int(t.hdr) + keyWords(n) }

// link fills the node allocated at off for key and indexes it at pos (from
// find or emptySlot). The header words other than hash and key length are
// left for the caller to set.
func (t *table) link(off uint32, key []byte, h uint64, pos int) {
	t.arena[off] = h
	t.arena[off+1] = uint64(len(key)) << 32
	t.setKey(off, key)
	t.index[pos] = uint64(uint32(h))<<32 | uint64(off+1)
	t.live++
}

// remove unindexes and frees a node.
func (t *table) remove(off uint32) {
	h := t.arena[off]
	n := len(t.index)
	i := t.home(uint32(h))
	for uint32(t.index[i]) != off+1 {
		if i++; i == n {
			i = 0
		}
	}
	// Backward-shift deletion keeps linear probing tombstone-free, so lookups
	// never slow down however long the zone churns.
	for {
		t.index[i] = 0
		j := i
		for {
			if j++; j == n {
				j = 0
			}
			s := t.index[j]
			if s == 0 {
				t.free(off)
				t.live--
				return
			}
			k := t.home(uint32(s >> 32))
			// The entry at j may fill the hole at i unless its home lies
			// cyclically in (i, j].
			if i <= j {
				if i < k && k <= j {
					continue
				}
			} else if i < k || k <= j {
				continue
			}
			t.index[i] = s
			i = j
			break
		}
	}
}

func (t *table) alloc(words int) (uint32, bool) {
	if words > maxSmallWords {
		run := (words + pageWords - 1) / pageWords
		p := t.grabPages(run)
		if p == noPage {
			return 0, false
		}
		t.pages[p].class = pageLargeHead
		t.pages[p].run = uint32(run)
		for i := 1; i < run; i++ {
			t.pages[int(p)+i].class = pageLargeTail
		}
		return uint32(p) * pageWords, true
	}
	c := classOf[words]
	p := t.partial[c]
	if p == noPage {
		if p = t.grabPages(1); p == noPage {
			return 0, false
		}
		t.pages[p] = page{class: c, prev: noPage, next: noPage}
		t.pushPartial(c, p)
	}
	pg := &t.pages[p]
	var off uint32
	if pg.free != 0 {
		off = pg.free - 1
		pg.free = uint32(t.arena[off])
	} else {
		off = uint32(p)*pageWords + uint32(pg.bump)*uint32(classWords[c])
		pg.bump++
	}
	pg.live++
	if pg.live == slotsPerPage(c) {
		t.unlinkPartial(c, p)
	}
	return off, true
}

func (t *table) free(off uint32) {
	p := int32(off / pageWords)
	pg := &t.pages[p]
	if pg.class == pageLargeHead {
		for i := int32(0); i < int32(pg.run); i++ {
			t.pages[p+i].class = pageFree
		}
		return
	}
	c := pg.class
	if pg.live == slotsPerPage(c) {
		t.pushPartial(c, p)
	}
	pg.live--
	if pg.live == 0 {
		// Like ngx_slab_free_locked: an empty page goes back to the pool and
		// may serve another size class.
		t.unlinkPartial(c, p)
		pg.class = pageFree
		return
	}
	t.arena[off] = uint64(pg.free)
	pg.free = off + 1
}

// grabPages finds run contiguous free pages (first fit). It runs only when a
// size class has no partial page, so the linear scan is off the hot path.
func (t *table) grabPages(run int) int32 {
	n := 0
	for i := range t.pages {
		if t.pages[i].class != pageFree {
			n = 0
			continue
		}
		if n++; n == run {
			return int32(i - run + 1)
		}
	}
	return noPage
}

func (t *table) pushPartial(c uint8, p int32) {
	pg := &t.pages[p]
	pg.prev = noPage
	pg.next = t.partial[c]
	if pg.next != noPage {
		t.pages[pg.next].prev = p
	}
	t.partial[c] = p
}

func (t *table) unlinkPartial(c uint8, p int32) {
	pg := &t.pages[p]
	if pg.prev != noPage {
		t.pages[pg.prev].next = pg.next
	} else {
		t.partial[c] = pg.next
	}
	if pg.next != noPage {
		t.pages[pg.next].prev = pg.prev
	}
	pg.prev, pg.next = noPage, noPage
}

// capacity is how many nodes with keys of keyLen bytes fit in an empty table.
func (t *table) capacity(keyLen int) int {
	words := int(t.hdr) + keyWords(keyLen)
	if words > maxSmallWords {
		return len(t.pages) / ((words + pageWords - 1) / pageWords)
	}
	return len(t.pages) * int(slotsPerPage(classOf[words]))
}

// bytes is the memory the table holds, for documentation and tests.
func (t *table) bytes() int64 {
	return int64(len(t.arena))*8 + int64(len(t.pages))*pageMetaBytes + int64(len(t.index))*8
}
