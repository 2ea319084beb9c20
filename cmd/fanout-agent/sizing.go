package main

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fanoutdev/fanout/collector/kubeclient"
	"github.com/fanoutdev/fanout/collector/probe"
)

// counterMapSize is --bpf.max-cgroups when set, else sized from the node's pod capacity (status.capacity.pods),
// else probe.DefaultMaxCgroups (no API server at start: counting must not wait for it).
func counterMapSize(ctx context.Context, flag uint, client kubeclient.Client, node string, logger *slog.Logger) uint32 {
	if flag > 0 {
		return uint32(flag)
	}
	if client == nil {
		return probe.DefaultMaxCgroups
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		logger.Warn("node pod capacity unknown; counter map at the default size", "err", err, "size", probe.DefaultMaxCgroups)
		return probe.DefaultMaxCgroups
	}
	pods, ok := n.Status.Capacity.Pods().AsInt64()
	if !ok || pods <= 0 {
		return probe.DefaultMaxCgroups
	}
	size := probe.SizeForPods(int(pods))
	logger.Info("counter map sized from the node's pod capacity", "pods", pods, "size", size)
	return size
}
