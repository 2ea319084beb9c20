package fanoutguard

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Build builds fanout-agent and fanout-aggregator into dir (run inside the fanout module).
func Build(ctx context.Context, dir string) (agentBin, aggregatorBin string, err error) {
	agentBin, aggregatorBin = filepath.Join(dir, "fanout-agent"), filepath.Join(dir, "fanout-aggregator")
	for pkg, out := range map[string]string{
		"github.com/fanoutdev/fanout/cmd/fanout-agent":      agentBin,
		"github.com/fanoutdev/fanout/cmd/fanout-aggregator": aggregatorBin,
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("build %s: %w: %s", pkg, err, stderr.String())
		}
	}
	return agentBin, aggregatorBin, nil
}

// BuildFanoutctl builds fanoutctl into dir: the operator's CLI the guard releases workloads with.
func BuildFanoutctl(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "fanoutctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/fanoutdev/fanout/cmd/fanoutctl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build fanoutctl: %w: %s", err, stderr.String())
	}
	return out, nil
}
