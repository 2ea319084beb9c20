// Command gen writes fanout's generated Grafana dashboards and provisioning files (see package dashboards).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/fanoutdev/fanout/dashboards"
)

func main() {
	out := flag.String("out", "dashboards", "directory to write into")
	rules := flag.String("rules", "deploy/prometheus/rules.yaml", "Prometheus rule file to convert into Grafana alerts")
	flag.Parse()
	if err := run(*out, *rules); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}

func run(out, rulesPath string) error {
	raw, err := os.ReadFile(rulesPath)
	if err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	files, err := dashboards.Render(raw)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(out, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create dir for %s: %w", n, err)
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
		fmt.Println("wrote", p)
	}
	return nil
}
