package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
)

// PodloadPackage is the import path of the pod process program.
const PodloadPackage = "github.com/fanoutdev/fanout/e2e/cmd/podload"

// BuildPodload builds e2e/cmd/podload into dir and returns the binary's path. It must run inside the fanout module
// (tests do: their working directory is their package's).
func BuildPodload(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "podload")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, PodloadPackage)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build podload: %w: %s", err, stderr.String())
	}
	return out, nil
}
