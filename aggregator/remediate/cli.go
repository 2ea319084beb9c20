package remediate

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fanoutdev/fanout/internal/cliflag"
)

const undoUsage = `usage: fanoutctl undo [--kubeconfig FILE] [--dry-run] Kind/namespace/name...

Undo a durable pause made by the aggregator: restore the fields recorded in the fanout.dev/paused-previous annotation
exactly and remove the fanout.dev/paused* annotations. Needs get and patch on the workload.
`

// RunUndoCLI implements `fanoutctl undo`. Exit codes: 0 done (or nothing to undo), 1 an undo failed, 2 bad usage.
func RunUndoCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fanoutctl undo", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: current)")
	dryRun := fs.Bool("dry-run", false, "server-side dry run: print the patch, change nothing")
	if err := cliflag.Parse(fs, args, undoUsage, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "fanoutctl undo:", err)
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "fanoutctl undo: missing the workload: fanoutctl undo [flags] Kind/namespace/name... (run 'fanoutctl undo --help' for its flags)")
		fs.Usage()
		return 2
	}
	var workloads []Workload
	for _, a := range fs.Args() {
		w, err := ParseWorkload(a)
		if err != nil {
			fmt.Fprintf(stderr, "fanoutctl undo: %v\n", err)
			return 2
		}
		workloads = append(workloads, w)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl undo: load kubeconfig: %v\n", err)
		return 1
	}
	cc.UserAgent = "fanoutctl-undo"
	client, err := kubernetes.NewForConfig(cc)
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl undo: client: %v\n", err)
		return 1
	}
	r, err := New(Config{Client: client, DryRun: *dryRun})
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl undo: %v\n", err)
		return 1
	}
	code := 0
	for _, w := range workloads {
		res, err := r.Undo(ctx, w)
		if err != nil {
			fmt.Fprintf(stderr, "fanoutctl undo: %v\n", err)
			code = 1
			continue
		}
		switch res.Action {
		case ActionNotPaused:
			fmt.Fprintf(stdout, "%s: not paused, nothing to undo\n", w)
		default:
			verb := "undone"
			if res.DryRun {
				verb = "would undo (dry run)"
			}
			fmt.Fprintf(stdout, "%s: %s", w, verb)
			if rec := res.Record; rec != nil {
				fmt.Fprintf(stdout, " (paused %s by %s: %s", rec.PausedAt.Format("2006-01-02T15:04:05Z"), rec.By, rec.Reason)
				if rec.DecisionID != "" {
					fmt.Fprintf(stdout, ", decision %s", rec.DecisionID)
				}
				fmt.Fprint(stdout, ")")
			}
			for path, prev := range res.Previous {
				fmt.Fprintf(stdout, "; restored %s=%s", path, prev)
			}
			fmt.Fprintln(stdout)
			if res.DryRun {
				fmt.Fprintf(stdout, "patch: %s\n", res.Patch)
			}
		}
	}
	return code
}
