// Command kubectl-bin builds (or finds cached) a real, unmodified kubectl from the Go module proxy at the e2e API
// server's version and prints its path. The demo's telemetry DaemonSet runs it; call it early so its build is not
// charged to the demo.
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
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "kubectl-bin")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	path, err := harness.EnsureKubectl(ctx, logger)
	if err != nil {
		logger.Error("build kubectl", "err", err)
		os.Exit(1)
	}
	fmt.Printf("kubectl=%s\n", path)
	logger.Info("kubectl ready", "took", time.Since(start).Round(time.Millisecond))
}
