package localcluster

import (
	"fmt"
	"net"
)

// freePort asks the kernel for an unused loopback port. Another process
// could take it before the component binds it; components that fail to
// bind are reported with their log, so such a race shows up clearly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
