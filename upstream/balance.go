package upstream

import (
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrNoLiveUpstreams is returned by Pick (and Do) when every server is down,
// failed, at max_conns or already tried: nginx logs "no live upstreams" and
// answers 502.
var ErrNoLiveUpstreams = errors.New("no live upstreams")

// Tried is the per-request balancer state of nginx's
// ngx_http_upstream_rr_peer_data_t and the hash/ip_hash peer data: the
// bitmap of servers already tried, whether selection moved on to the backup
// servers, and the hash walk position. The zero value is a fresh request.
// A Tried belongs to one request and must not be shared between goroutines.
type Tried struct {
	bits   uint64
	more   []uint64 // servers beyond 64
	backup bool     // rrp->peers switched to the backup list

	started bool   // hash state initialised (init_*_peer ran)
	htries  int    // hp->tries / iphp->tries
	rehash  int    // hp->rehash
	hash    uint64 // hp->hash, iphp->hash or the chash point index
}

// Reset makes t a fresh request's state, keeping its allocated bitmap.
func (t *Tried) Reset() {
	more := t.more
	clear(more)
	*t = Tried{more: more[:0]}
}

func (t *Tried) has(i int) bool {
	if i < 64 {
		return t.bits&(1<<uint(i)) != 0
	}
	j := i/64 - 1
	return j < len(t.more) && t.more[j]&(1<<uint(i%64)) != 0
}

func (t *Tried) set(i int) {
	if i < 64 {
		t.bits |= 1 << uint(i)
		return
	}
	j := i/64 - 1
	for len(t.more) <= j {
		t.more = append(t.more, 0)
	}
	t.more[j] |= 1 << uint(i%64)
}

func (t *Tried) clearBits() {
	t.bits = 0
	clear(t.more)
}

// Pick selects a server for one attempt of a request, exactly as nginx's
// peer.get of the configured balancer, and counts the attempt as an active
// connection of the peer until Done. hashKey is the evaluated `hash` key
// (ignored by other methods); clientIP is the client address for ip_hash
// (an invalid Addr, e.g. for unix-socket clients, hashes like nginx's
// pseudo address). tried carries the state of previous attempts of the same
// request and must be non-nil. Pick returns ErrNoLiveUpstreams when nothing
// is selectable. Safe for concurrent use; does not allocate.
func (g *Group) Pick(hashKey []byte, clientIP netip.Addr, tried *Tried) (*Peer, error) {
	now := nanotime()
	g.mu.Lock()
	var p *Peer
	switch g.balance {
	case LeastConn:
		p = g.getLeastConnPeer(tried, now)
	case IPHash:
		p = g.getIPHashPeer(clientIP, tried, now)
	case Hash:
		if g.points != nil {
			p = g.getChashPeer(hashKey, tried, now)
		} else {
			p = g.getHashPeer(hashKey, tried, now)
		}
	case Random:
		p = g.getRandomPeer(tried, now, false)
	case RandomTwo:
		p = g.getRandomPeer(tried, now, true)
	default:
		p = g.getRoundRobinPeer(tried, now)
	}
	if p != nil {
		p.conns++ // peer->conns++ in every nginx get function
	}
	g.mu.Unlock()
	if p == nil {
		return nil, ErrNoLiveUpstreams
	}
	return p, nil
}

// Done ends an attempt started by Pick, mirroring
// ngx_http_upstream_free_round_robin_peer (which every nginx balancer
// uses). failed is nginx's NGX_PEER_FAILED: it counts towards max_fails,
// records the failure time and lowers effective_weight by weight/max_fails
// (recovering by one per selection in the WRR loop). A success clears the
// failure count only if the peer was selected after its fail_timeout
// expired (accessed < checked): that lone request is nginx's probe of a
// server returning from failure. A single-server group never accounts
// failures, as in nginx (peers->single). Safe for concurrent use.
func (g *Group) Done(p *Peer, failed bool) {
	now := nanotime()
	g.mu.Lock()
	p.conns--
	if !g.single {
		if failed {
			p.fails++
			p.accessed = now
			p.checked = now
			if p.maxFails != 0 {
				p.effectiveWeight -= p.weight / p.maxFails
			}
			if p.effectiveWeight < 0 {
				p.effectiveWeight = 0
			}
		} else if p.accessed < p.checked {
			// mark peer live if check passed
			p.fails = 0
		}
	}
	g.mu.Unlock()
}

// getRoundRobinPeer mirrors ngx_http_upstream_get_round_robin_peer: a
// single server is only checked for down and max_conns; otherwise smooth
// WRR over the current tier; when nothing is left, switch to the backup
// tier once (clearing the tried bitmap), else fail with "no live upstreams".
// nginx >= 1.11.5 no longer resets the fail counters of all peers here; a
// group whose servers all failed answers 502 until fail_timeout expires.
func (g *Group) getRoundRobinPeer(t *Tried, now int64) *Peer {
	if g.single {
		p := &g.primary[0]
		if p.down || p.hcDown || (p.maxConns != 0 && p.conns >= p.maxConns) {
			return nil
		}
		return p
	}
	if !t.backup {
		if p := g.getPeer(g.primary, t, now); p != nil {
			return p
		}
		if len(g.backup) == 0 {
			return nil
		}
		t.backup = true
		t.clearBits()
	}
	return g.getPeer(g.backup, t, now)
}

// getPeer mirrors ngx_http_upstream_get_peer, nginx's smooth weighted round
// robin: every usable, untried peer gains its effective_weight; the peer
// with the largest current_weight wins and loses the total. For weights
// 5,1,1 this yields a a b a c a a. effective_weight, lowered on failures,
// creeps back by one per selection round.
func (g *Group) getPeer(tier []Peer, t *Tried, now int64) *Peer {
	var best *Peer
	total := 0
	for i := range tier {
		p := &tier[i]
		if t.has(i) || !p.usableLocked(now) {
			continue
		}
		p.currentWeight += p.effectiveWeight
		total += p.effectiveWeight
		if p.effectiveWeight < p.weight {
			p.effectiveWeight++
		}
		if best == nil || p.currentWeight > best.currentWeight {
			best = p
		}
	}
	if best == nil {
		return nil
	}
	t.set(best.index)
	best.currentWeight -= total
	if now-best.checked > best.failTimeout {
		best.checked = now
	}
	return best
}

// getLeastConnPeer mirrors ngx_http_upstream_get_least_conn_peer: the peer
// with the smallest conns/weight (compared as conns*w' < conns'*w) wins;
// among ties, smooth WRR decides, scanning from the first tied peer. When
// the tier is exhausted the backup tier is tried, as in its "failed:" path.
func (g *Group) getLeastConnPeer(t *Tried, now int64) *Peer {
	tier := g.primary
	if t.backup {
		tier = g.backup
	}
	for {
		if p := leastConn(tier, t, now); p != nil {
			return p
		}
		if t.backup || len(g.backup) == 0 {
			return nil
		}
		t.backup = true
		t.clearBits()
		tier = g.backup
	}
}

func leastConn(tier []Peer, t *Tried, now int64) *Peer {
	var best *Peer
	many := false
	for i := range tier {
		p := &tier[i]
		if t.has(i) || !p.usableLocked(now) {
			continue
		}
		if best == nil || p.conns*best.weight < best.conns*p.weight {
			best = p
			many = false
		} else if p.conns*best.weight == best.conns*p.weight {
			many = true
		}
	}
	if best == nil {
		return nil
	}
	if many {
		total := 0
		for i := best.index; i < len(tier); i++ {
			p := &tier[i]
			if t.has(i) || !p.usableLocked(now) || p.conns*best.weight != best.conns*p.weight {
				continue
			}
			p.currentWeight += p.effectiveWeight
			total += p.effectiveWeight
			if p.effectiveWeight < p.weight {
				p.effectiveWeight++
			}
			if p.currentWeight > best.currentWeight {
				best = p
			}
		}
		best.currentWeight -= total
		if now-best.checked > best.failTimeout {
			best.checked = now
		}
	}
	t.set(best.index)
	return best
}

// ipHashPseudo is ngx_http_upstream_ip_hash_pseudo_addr, used for clients
// that are not IPv4/IPv6 (unix sockets).
var ipHashPseudo = [3]byte{}

// getIPHashPeer mirrors ngx_http_upstream_get_ip_hash_peer: hash starts at
// 89; for each of the first 3 octets of an IPv4 address (all 16 bytes of
// IPv6) hash = (hash*113 + octet) % 6271; w = hash % total_weight walks the
// weights to a peer; a tried/unusable peer re-hashes from the current
// value; after 20 attempts (or with a single server) it falls back to round
// robin. The hash is kept across retries of the same request (iphp->hash).
// IPv4-mapped IPv6 clients hash as IPv4 (Go's dual-stack listeners report
// them that way while nginx sees AF_INET).
func (g *Group) getIPHashPeer(ip netip.Addr, t *Tried, now int64) *Peer {
	if !t.started {
		t.started = true
		t.hash = 89
	}
	if t.htries > 20 || g.single {
		return g.getRoundRobinPeer(t, now)
	}
	var a16 [16]byte
	var addr []byte
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		a4 := ip.As4()
		copy(a16[:], a4[:3])
		addr = a16[:3]
	case ip.Is6():
		a16 = ip.As16()
		addr = a16[:]
	default:
		addr = ipHashPseudo[:]
	}
	hash := t.hash
	for {
		for _, b := range addr {
			hash = (hash*113 + uint64(b)) % 6271
		}
		w := int(hash % uint64(g.totalWeight))
		pi := 0
		for w >= g.primary[pi].weight {
			w -= g.primary[pi].weight
			pi++
		}
		p := &g.primary[pi]
		if !t.has(pi) && p.usableLocked(now) {
			t.set(pi)
			t.hash = hash
			if now-p.checked > p.failTimeout {
				p.checked = now
			}
			return p
		}
		t.htries++
		if t.htries > 20 {
			return g.getRoundRobinPeer(t, now)
		}
	}
}

// getHashPeer mirrors ngx_http_upstream_get_hash_peer (`hash KEY`):
// hash += (crc32([REHASH] KEY) >> 16) & 0x7fff, compatible with
// Cache::Memcached, with REHASH the decimal attempt number omitted the first
// time; w = hash % total_weight walks the weights. 20 failed attempts, a
// single server or an empty key fall back to round robin.
func (g *Group) getHashPeer(key []byte, t *Tried, now int64) *Peer {
	if t.htries > 20 || g.single || len(key) == 0 {
		return g.getRoundRobinPeer(t, now)
	}
	var buf [20]byte
	for {
		var h uint32
		if t.rehash > 0 {
			h = crc32.Update(0, crc32.IEEETable, strconv.AppendInt(buf[:0], int64(t.rehash), 10))
		}
		h = crc32.Update(h, crc32.IEEETable, key)
		t.hash += uint64((h >> 16) & 0x7fff)
		t.rehash++
		w := int(t.hash % uint64(g.totalWeight))
		pi := 0
		for w >= g.primary[pi].weight {
			w -= g.primary[pi].weight
			pi++
		}
		p := &g.primary[pi]
		if !t.has(pi) && p.usableLocked(now) {
			t.set(pi)
			if now-p.checked > p.failTimeout {
				p.checked = now
			}
			return p
		}
		t.htries++
		if t.htries > 20 {
			return g.getRoundRobinPeer(t, now)
		}
	}
}

type chashPoint struct {
	hash   uint32
	server int
}

// buildChashPoints mirrors ngx_http_upstream_init_chash: 160 points per
// weight unit per server; point j of a server is
// crc32(HOST "\0" PORT PREV_HASH) with PREV_HASH the previous point's hash
// as 4 little-endian bytes (0 for the first), compatible with
// Cache::Memcached::Fast. "unix:/path" hashes the path with an empty port.
// Points are sorted and duplicates dropped.
func buildChashPoints(peers []Peer) []chashPoint {
	n := 0
	for i := range peers {
		n += peers[i].weight * 160
	}
	points := make([]chashPoint, 0, n)
	for i := range peers {
		p := &peers[i]
		host, port := chashHostPort(p.addr)
		base := crc32.Update(0, crc32.IEEETable, []byte(host))
		base = crc32.Update(base, crc32.IEEETable, []byte{0})
		base = crc32.Update(base, crc32.IEEETable, []byte(port))
		var prev [4]byte
		for j := 0; j < p.weight*160; j++ {
			h := crc32.Update(base, crc32.IEEETable, prev[:])
			points = append(points, chashPoint{hash: h, server: p.server})
			prev = [4]byte{byte(h), byte(h >> 8), byte(h >> 16), byte(h >> 24)}
		}
	}
	// ngx_qsort is not stable; points with equal hashes are collapsed to
	// one below, and which server keeps a duplicated hash is as arbitrary
	// in nginx as here (a 32-bit collision between servers is unlikely).
	slices.SortStableFunc(points, func(a, b chashPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	out := points[:0]
	for i, pt := range points {
		if i == 0 || pt.hash != out[len(out)-1].hash {
			out = append(out, pt)
		}
	}
	return out
}

// chashHostPort splits a server's text like ngx_http_upstream_init_chash:
// the port is the trailing run of digits after the last ':'.
func chashHostPort(s string) (host, port string) {
	if len(s) >= 5 && strings.EqualFold(s[:5], "unix:") {
		return s[5:], ""
	}
	for j := 0; j < len(s); j++ {
		c := s[len(s)-j-1]
		if c == ':' {
			return s[:len(s)-j-1], s[len(s)-j:]
		}
		if c < '0' || c > '9' {
			break
		}
	}
	return s, ""
}

// findChashPoint mirrors ngx_http_upstream_find_chash_point: the first
// point >= hash (possibly len(points), wrapped by the caller's modulo).
func findChashPoint(points []chashPoint, hash uint32) int {
	i, j := 0, len(points)
	for i < j {
		k := (i + j) / 2
		switch {
		case hash > points[k].hash:
			i = k + 1
		case hash < points[k].hash:
			j = k
		default:
			return k
		}
	}
	return i
}

// getChashPeer mirrors ngx_http_upstream_init_chash_peer and
// ngx_http_upstream_get_chash_peer (`hash KEY consistent`): start at the
// first ring point >= crc32(KEY); take the point's server (smooth WRR among
// peers sharing that server text); if it is tried or unusable move to the
// next point; after 20 moves fall back to round robin.
func (g *Group) getChashPeer(key []byte, t *Tried, now int64) *Peer {
	if !t.started {
		t.started = true
		t.hash = uint64(findChashPoint(g.points, crc32.ChecksumIEEE(key)))
	}
	if t.htries > 20 || g.single || len(key) == 0 {
		return g.getRoundRobinPeer(t, now)
	}
	for {
		server := g.points[t.hash%uint64(len(g.points))].server
		var best *Peer
		total := 0
		for i := range g.primary {
			p := &g.primary[i]
			if p.server != server || t.has(i) || !p.usableLocked(now) {
				continue
			}
			p.currentWeight += p.effectiveWeight
			total += p.effectiveWeight
			if p.effectiveWeight < p.weight {
				p.effectiveWeight++
			}
			if best == nil || p.currentWeight > best.currentWeight {
				best = p
			}
		}
		if best != nil {
			best.currentWeight -= total
			t.set(best.index)
			if now-best.checked > best.failTimeout {
				best.checked = now
			}
			return best
		}
		t.hash++
		t.htries++
		if t.htries > 20 {
			return g.getRoundRobinPeer(t, now)
		}
	}
}

// peekRandom mirrors ngx_http_upstream_peek_random_peer: a uniformly random
// point of the total weight, binary-searched in the cumulative ranges.
func (g *Group) peekRandom() int {
	x := rand.IntN(g.totalWeight)
	i, j := 0, len(g.ranges)
	for j-i > 0 {
		k := (i + j) / 2
		if x < g.ranges[k] {
			j = k
		} else {
			i = k + 1
		}
	}
	return i
}

// getRandomPeer mirrors ngx_http_upstream_get_random_peer and, with two,
// ngx_http_upstream_get_random2_peer: weighted random picks, skipping tried
// or unusable peers, falling back to round robin after 20 misses or with a
// single server. random two draws two distinct usable peers and keeps the
// one with fewer active connections per weight (least_conn); a tie keeps
// the second draw.
func (g *Group) getRandomPeer(t *Tried, now int64, two bool) *Peer {
	if t.htries > 20 || g.single {
		return g.getRoundRobinPeer(t, now)
	}
	var prev *Peer
	for {
		i := g.peekRandom()
		p := &g.primary[i]
		if p != prev && !t.has(i) && p.usableLocked(now) {
			if !two || prev != nil {
				if prev != nil && p.conns*prev.weight > prev.conns*p.weight {
					p = prev
				}
				t.set(p.index)
				if now-p.checked > p.failTimeout {
					p.checked = now
				}
				return p
			}
			prev = p
			continue
		}
		t.htries++
		if t.htries > 20 {
			if prev != nil {
				t.set(prev.index)
				return prev
			}
			return g.getRoundRobinPeer(t, now)
		}
	}
}
