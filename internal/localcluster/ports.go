package localcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports are picked below Linux's ephemeral range (32768–60999 by default).
// A port the kernel hands out for 127.0.0.1:0 comes from that range, and so
// does the local port of every outgoing connection: between freePort
// closing its probe listener and etcd or an apiserver binding the port, any
// client connection on the machine could take it ("bind: address already
// in use" in a CI run). Outgoing connections never take a port below the
// range, so the only remaining race is with another process doing the same
// probe, which the random start makes unlikely.
const (
	portLow  = 10000
	portHigh = 32768
)

var ports struct {
	sync.Mutex
	given map[int]bool // ports this process has handed out, never handed out twice
}

// freePort returns a loopback port that is unused now and that this process
// has not handed out before.
func freePort() (int, error) {
	return freePortFrom(rand.IntN(portHigh - portLow))
}

// freePortFrom probes ports from portLow+start upwards, wrapping around.
func freePortFrom(start int) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	span := portHigh - portLow
	for i := 0; i < span; i++ {
		p := portLow + (start+i)%span
		if ports.given[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use by someone else
		}
		l.Close()
		ports.given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("find a free loopback port: every port in %d–%d is taken or was handed out already", portLow, portHigh-1)
}
