// Command etcd is the upstream etcd server, built from the module proxy so
// the harness needs no downloaded binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
