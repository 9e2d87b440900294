package localcluster

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortBelowEphemeralRangeAndUnique(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portLow || p >= portHigh {
			t.Fatalf("port %d outside %d–%d", p, portLow, portHigh-1)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	if len(seen) != 200 {
		t.Fatalf("got %d distinct ports, want 200", len(seen))
	}
}

func TestFreePortSkipsBoundPort(t *testing.T) {
	const off = 1234
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(portLow+off))
	if err != nil {
		t.Skipf("port %d busy on this machine: %v", portLow+off, err)
	}
	defer l.Close()
	p, err := freePortFrom(off)
	if err != nil {
		t.Fatal(err)
	}
	if p == portLow+off {
		t.Fatalf("freePortFrom returned %d, which a listener holds", p)
	}
	if p < portLow+off {
		t.Fatalf("freePortFrom(%d) returned %d, before its start", off, p)
	}
}
