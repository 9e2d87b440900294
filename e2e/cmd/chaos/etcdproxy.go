package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
)

// etcdProxy forwards one replica's etcd connections to etcd, so the soak
// can cut that replica off from etcd while it still reaches the
// apiservers. A cut is a partition, not a refusal: connections stay open
// and carry nothing, so the replica finds out the way it would on a real
// network, by its requests and lease renewals timing out. Healing closes
// the connections held during the cut; the client dials again.
type etcdProxy struct {
	l      net.Listener
	target string // host:port of etcd

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool // every open connection → whether it is etcd's side
}

// newEtcdProxy listens on 127.0.0.1 and forwards to endpoint
// (http://host:port).
func newEtcdProxy(endpoint string) (*etcdProxy, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("etcd endpoint %q: want http://host:port", endpoint)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for an etcd proxy: %w", err)
	}
	p := &etcdProxy{l: l, target: u.Host, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

// endpoint is the URL a replica connects to instead of etcd's.
func (p *etcdProxy) endpoint() string { return "http://" + p.l.Addr().String() }

func (p *etcdProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		go p.handle(c)
	}
}

func (p *etcdProxy) handle(c net.Conn) {
	if !p.track(c, false) {
		return // cut: held open, carrying nothing, until heal closes it
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(c) // etcd is down: the client sees a refused connection
		return
	}
	if !p.track(up, true) {
		p.drop(up)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	p.drop(up)
	if p.isCut() {
		return // the replica's side stays open and silent until heal
	}
	p.drop(c)
}

// track registers c and reports whether it may carry data now.
func (p *etcdProxy) track(c net.Conn, upstream bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[c] = upstream
	return !p.cut
}

func (p *etcdProxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *etcdProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// partition stops all traffic: open connections go silent and new ones
// are accepted and held.
func (p *etcdProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	// Closing etcd's side ends the copiers; the replica's side stays
	// open and silent (handle leaves it while cut).
	for c, upstream := range p.conns {
		if upstream {
			_ = c.Close()
		}
	}
}

// heal lets traffic through again and closes what the cut held, so the
// client reconnects at once rather than after its keepalive timeout.
func (p *etcdProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *etcdProxy) close() {
	_ = p.l.Close()
	p.heal()
}
