// Command e2e-bins builds (or finds cached) the etcd and kube-apiserver binaries the e2e tests and the demo run, and
// prints where they are. `make demo` and `make test` call it first, so the first, long build (10-25 min on 2 cores)
// shows its progress every 30 s instead of running silently inside a test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/e2e/harness"
)

func main() {
	fs := flag.NewFlagSet("e2e-bins", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 0, "give up building after this long (0: no limit; a slow build is not a broken one)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "e2e-bins")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("e2e-bins -timeout=%s reached", *timeout))
		defer cancel()
	}
	start := time.Now()
	bins, err := harness.EnsureBinaries(ctx, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-bins: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("etcd=%s\nkube-apiserver=%s\n", bins.Etcd, bins.KubeAPIServer)
	logger.Info("control plane binaries ready", "dir", bins.Dir, "took", time.Since(start).Round(time.Millisecond))
}
