// Package silentnet serves tests a TCP address that accepts connections
// and never answers: an apiserver that hangs, or a firewall that drops
// after the handshake.
package silentnet

import (
	"net"
	"sync"
	"testing"
)

// Listen returns such an address on 127.0.0.1; it closes with the test.
func Listen(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
