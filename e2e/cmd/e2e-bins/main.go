// Command e2e-bins builds (or finds cached) the etcd and kube-apiserver binaries the e2e tests and the demo run, and
// prints where they are. CI calls it early (make e2e-bins) so the ~5 minute cold build is not charged to a test.
package main

import (
	"context"
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
	timeout := flag.Duration("timeout", 30*time.Minute, "give up building after this long")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "e2e-bins")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	bins, err := harness.EnsureBinaries(ctx, logger)
	if err != nil {
		logger.Error("build control plane binaries", "err", err)
		os.Exit(1)
	}
	fmt.Printf("etcd=%s\nkube-apiserver=%s\n", bins.Etcd, bins.KubeAPIServer)
	logger.Info("control plane binaries ready", "dir", bins.Dir, "took", time.Since(start).Round(time.Millisecond))
}
