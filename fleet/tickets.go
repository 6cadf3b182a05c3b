package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"log"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// TicketKeys shares TLS session ticket keys between the nodes of a fleet
// through Redis, so a client resumes its session on any node
// (`ssl_session_ticket_key redis:HOST:PORT;`). Redis holds up to three
// 32-byte keys, newest first: the first encrypts, all decrypt. The first
// node to find the rotation marker expired puts a fresh key in front
// (atomically, in a script); every node polls every PollInterval and
// installs the keys in its TLS configurations. Until Redis answers, a node
// uses a random key of its own (tickets then resume on that node only).
type TicketKeys struct {
	rdb      *redis.Client
	addr     string
	rotate   time.Duration
	mu       sync.Mutex
	keys     [][32]byte
	configs  []*tls.Config
	stop     chan struct{}
	done     chan struct{}
	down     bool
	ready    chan struct{}
	readyOne sync.Once
}

// PollInterval is how often a node reads the fleet's ticket keys.
const PollInterval = 5 * time.Second

// DefaultRotation is how long a ticket key encrypts before the next one
// takes over (it still decrypts for two more rotations).
const DefaultRotation = time.Hour

const rotateScript = `
local cur = redis.call('GET', KEYS[1])
if (not cur) or redis.call('EXISTS', KEYS[2]) == 0 then
  local v = string.sub(ARGV[1] .. (cur or ''), 1, 96)
  redis.call('SET', KEYS[1], v)
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return v
end
return cur`

// NewTicketKeys starts sharing ticket keys through the Redis at addr; it
// waits up to a second for the first answer so that the first handshakes
// already use the fleet's keys.
func NewTicketKeys(addr string, rotate time.Duration) *TicketKeys {
	if rotate <= 0 {
		rotate = DefaultRotation
	}
	tk := &TicketKeys{
		addr: addr,
		rdb: redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, PoolSize: 1, DisableIdentity: true}),
		rotate: rotate,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ready:  make(chan struct{}),
	}
	var k [32]byte
	_, _ = rand.Read(k[:])
	tk.keys = [][32]byte{k}
	go tk.run()
	select {
	case <-tk.ready:
	case <-time.After(time.Second):
	}
	return tk
}

// Addr is the Redis address.
func (tk *TicketKeys) Addr() string { return tk.addr }

// Register installs the current keys in cfg and keeps it updated. Called
// while compiling a configuration.
func (tk *TicketKeys) Register(cfg *tls.Config) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	cfg.SetSessionTicketKeys(tk.keys)
	tk.configs = append(tk.configs, cfg)
}

// Keys returns the keys in use, newest first.
func (tk *TicketKeys) Keys() [][32]byte {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([][32]byte(nil), tk.keys...)
}

// Stop ends the polling.
func (tk *TicketKeys) Stop() {
	close(tk.stop)
	<-tk.done
	tk.rdb.Close()
}

func (tk *TicketKeys) run() {
	defer close(tk.done)
	script := redis.NewScript(rotateScript)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		var fresh [32]byte
		_, _ = rand.Read(fresh[:])
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, err := script.Run(ctx, tk.rdb, []string{"edgeproxy:tls:ticket_keys", "edgeproxy:tls:ticket_keys:fresh"},
			string(fresh[:]), tk.rotate.Milliseconds()).Text()
		cancel()
		if err != nil || len(v) < 32 {
			if !tk.down {
				log.Printf("[warn] fleet: redis at %s unavailable (%v): TLS tickets resume on this node only", tk.addr, err)
				tk.down = true
			}
		} else {
			if tk.down {
				log.Printf("[notice] fleet: redis at %s is back: TLS ticket keys shared again", tk.addr)
				tk.down = false
			}
			var keys [][32]byte
			for i := 0; i+32 <= len(v); i += 32 {
				var k [32]byte
				copy(k[:], v[i:i+32])
				keys = append(keys, k)
			}
			tk.mu.Lock()
			tk.keys = keys
			for _, c := range tk.configs {
				c.SetSessionTicketKeys(keys)
			}
			tk.mu.Unlock()
			tk.readyOne.Do(func() { close(tk.ready) })
		}
		select {
		case <-tk.stop:
			return
		case <-t.C:
		}
	}
}
