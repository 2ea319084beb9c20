package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrors runs each command-line mistake a user makes and checks its exit code and message: one line with a
// hint, never a flag dump; --help on stdout with exit 0.
func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("version: 1\nname: x\nworkloads:\n  - name: A/b/c\n   per_pod: 3\nnodes: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string // the whole of stderr (one line)
		stdout string // a substring of stdout
	}{
		{args: []string{"replay", "--bogus"}, code: 2,
			stderr: "fanoutctl replay: unknown flag --bogus (run 'fanoutctl replay --help' for its flags)\n"},
		{args: []string{"replay", "--jsn", "x.yaml"}, code: 2,
			stderr: "fanoutctl replay: unknown flag --jsn; did you mean --json? (run 'fanoutctl replay --help' for its flags)\n"},
		{args: []string{"replay"}, code: 2,
			stderr: "fanoutctl replay: missing the scenario file: fanoutctl replay FILE [--json] (examples in scenarios/) (run 'fanoutctl replay --help' for its flags)\n"},
		{args: []string{"replay", "--json"}, code: 2,
			stderr: "fanoutctl replay: missing the scenario file: fanoutctl replay FILE [--json] (examples in scenarios/) (run 'fanoutctl replay --help' for its flags)\n"},
		{args: []string{"replay", "a.yaml", "b.yaml"}, code: 2,
			stderr: "fanoutctl replay: more than one scenario file given (\"a.yaml\", \"b.yaml\") (run 'fanoutctl replay --help' for its flags)\n"},
		{args: []string{"replay", badYAML, "--json"}, code: 2,
			stderr: "fanoutctl replay: " + badYAML + ": line 5: file: invalid YAML: did not find expected '-' indicator\n"},
		{args: []string{"replay", filepath.Join(dir, "missing.yaml")}, code: 1,
			stderr: "fanoutctl replay: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory\n"},
		{args: []string{"replay", "--help"}, code: 0, stdout: "usage: fanoutctl replay FILE"},
		{args: []string{"status", "--bogus"}, code: 2,
			stderr: "fanoutctl status: unknown flag --bogus (run 'fanoutctl status --help' for its flags)\n"},
		{args: []string{"trip"}, code: 2,
			stderr: "fanoutctl trip: missing the workload: fanoutctl trip [flags] Kind/namespace/name --reason WHY (run 'fanoutctl trip --help' for its flags)\n"},
		{args: []string{"release", "DaemonSet/a/b"}, code: 2,
			stderr: "fanoutctl release: --reason is required (it goes to the audit log) (run 'fanoutctl release --help' for its flags)\n"},
		{args: []string{"top", "--interval"}, code: 2,
			stderr: "fanoutctl top: flag --interval needs a value (run 'fanoutctl top --help' for its flags)\n"},
		{args: []string{"frobnicate"}, code: 2,
			stderr: "fanoutctl: unknown command \"frobnicate\" (run 'fanoutctl --help' for the commands)\n"},
		{args: []string{"--help"}, code: 0, stdout: "usage: fanoutctl <command>"},
		{args: []string{"status", "-h"}, code: 0, stdout: "usage: fanoutctl status"},
		{args: []string{"node"}, code: 2,
			stderr: "fanoutctl node: missing the command: block, unblock or list (run 'fanoutctl node --help' for its commands)\n"},
		{args: []string{"node", "--bogus"}, code: 2,
			stderr: "fanoutctl node: unknown command \"--bogus\": block, unblock or list (run 'fanoutctl node --help' for its commands)\n"},
		{args: []string{"node", "frob"}, code: 2,
			stderr: "fanoutctl node: unknown command \"frob\": block, unblock or list (run 'fanoutctl node --help' for its commands)\n"},
		{args: []string{"node", "--help"}, code: 0, stdout: "usage: fanoutctl node <command>"},
		{args: []string{"node", "list", "--bogus"}, code: 2,
			stderr: "fanoutctl node list: unknown flag --bogus (run 'fanoutctl node list --help' for its flags)\n"},
		{args: []string{"node", "list", "--help"}, code: 0, stdout: "usage: fanoutctl node list"},
		{args: []string{"undo"}, code: 2,
			stderr: "fanoutctl undo: missing the workload: fanoutctl undo [flags] Kind/namespace/name... (run 'fanoutctl undo --help' for its flags)\n"},
		{args: []string{"undo", "--bogus"}, code: 2,
			stderr: "fanoutctl undo: unknown flag --bogus (run 'fanoutctl undo --help' for its flags)\n"},
		{args: []string{"undo", "--help"}, code: 0, stdout: "usage: fanoutctl undo"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("fanoutctl %s: exit %d, want %d (stderr %q)", strings.Join(tc.args, " "), code, tc.code, errb.String())
		}
		if errb.String() != tc.stderr {
			t.Errorf("fanoutctl %s:\n stderr %q\n want   %q", strings.Join(tc.args, " "), errb.String(), tc.stderr)
		}
		if !strings.Contains(out.String(), tc.stdout) {
			t.Errorf("fanoutctl %s: stdout %q lacks %q", strings.Join(tc.args, " "), out.String(), tc.stdout)
		}
	}
}
