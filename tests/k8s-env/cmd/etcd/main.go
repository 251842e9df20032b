// Command etcd runs the etcd server from the go.etcd.io modules, as etcd's own
// server/main.go does. etcd's server module carries replace directives, so
// `go install` cannot build it; this wrapper module can.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
