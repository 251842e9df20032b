// Command coredns is CoreDNS with only the plugins the DNS benchmark (scripts/bench-dns.sh)
// needs, as CoreDNS documents a build without plugin.cfg: its server core, the hosts plugin
// that answers the benchmark's name from the Corefile, and errors.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/hosts"
)

func init() {
	dnsserver.Directives = []string{"errors", "hosts"}
}

func main() { coremain.Run() }
