package benchmd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteSection(t *testing.T) {
	f := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := WriteSection(f, "Probe overhead", "## Probe overhead\n\nv1\n\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "# Benchmarks\n\n## Probe overhead\n\nv1\n\n" {
		t.Fatalf("created: %q", b)
	}
	other := "# Benchmarks\n\n## Aggregator\n\nagg\n\n## Probe overhead\n\nold\n\n## Replay\n\nreplay\n"
	if err := os.WriteFile(f, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSection(f, "Probe overhead", "## Probe overhead\n\nnew\n\n"); err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n## Aggregator\n\nagg\n\n## Probe overhead\n\nnew\n\n## Replay\n\nreplay\n"
	if b, _ := os.ReadFile(f); string(b) != want {
		t.Fatalf("replaced:\n%q\nwant\n%q", b, want)
	}
	if err := os.WriteFile(f, []byte("# Benchmarks\n\n## Aggregator\n\nagg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSection(f, "Probe overhead", "## Probe overhead\n\nnew\n\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "# Benchmarks\n\n## Aggregator\n\nagg\n\n## Probe overhead\n\nnew\n\n" {
		t.Fatalf("appended: %q", b)
	}
}

// A section given without its trailing blank line still leaves the following heading separated.
func TestWriteSectionKeepsSeparation(t *testing.T) {
	f := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(f, []byte("# Benchmarks\n\n## A\n\nold\n\n## B\n\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSection(f, "A", "## A\n\n| x |\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "# Benchmarks\n\n## A\n\n| x |\n\n## B\n\nb\n" {
		t.Fatalf("got %q", b)
	}
}
