// Command fleetctl is the command line for field ops: it lists and inspects kiosks, creates sites
// and enrollment tokens, sends commands and sets desired state through the hub's HTTP API. Run
// `fleetctl --help` for usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kioskfleet/kioskfleet/console/fleetctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleetctl.Run(ctx, os.Args[1:], fleetctl.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}
