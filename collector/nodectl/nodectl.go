package nodectl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/pindir"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
	"github.com/fanoutdev/fanout/internal/cliflag"
)

const usage = `usage: fanoutctl node <command> [flags]

Break-glass control of the kill switch on this node, directly on the pinned BPF maps (works with the agent dead).

commands:
  block    --pod-uid UID | --cgroup PATH [--ttl 1h] [--workload Kind/ns/name]   block a pod from the API server
  unblock  --pod-uid UID | --cgroup PATH | --cgroup-id ID | --workload W | --all  lift blocks
           [--ttl D]                                                              and exempt the pods for D
  list     [--json]                                                               show blocks and exemptions

An unblocked pod stays exempt from re-blocking (agent restarts, block directives, new-pod checks) until the
exemption's TTL (default: what remained of the block, else 1h) or an explicit "node block" of the pod.

common flags: --bpf.pin-dir DIR (default: the only instance under /sys/fs/bpf/fanout), --cgroup.root DIR
`

type common struct {
	pinDir     string
	cgroupRoot string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.pinDir, "bpf.pin-dir", "", "agent instance pin dir (default: the only dir under "+pindir.DefaultBase+")")
	fs.StringVar(&c.cgroupRoot, "cgroup.root", "", "pods cgroup to resolve pod UIDs in (default: kubepods under the cgroup2 mount)")
}

func (c *common) resolve() error {
	if c.pinDir == "" {
		dir, err := pindir.FindInstance(pindir.DefaultBase)
		if err != nil {
			return fmt.Errorf("%w: set --bpf.pin-dir", err)
		}
		c.pinDir = dir
	}
	if c.cgroupRoot == "" {
		root, err := cgroups.DefaultRoot()
		if err != nil {
			mount, merr := cgroups.Cgroup2Mount()
			if merr != nil {
				return fmt.Errorf("find pods cgroup: %w", err)
			}
			root = mount
		}
		c.cgroupRoot = root
	}
	return nil
}

// Run executes `fanoutctl node ARGS...` and returns the process exit code (0 ok, 1 failure, 2 usage).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const hint = "(run 'fanoutctl node --help' for its commands)"
	if len(args) == 0 {
		fmt.Fprintln(stderr, "fanoutctl node: missing the command: block, unblock or list "+hint)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var err error
	switch args[0] {
	case "block":
		err = runBlock(ctx, args[1:], stdout, stderr)
	case "unblock":
		err = runUnblock(args[1:], stdout, stderr)
	case "list":
		err = runList(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "fanoutctl node: unknown command %q: block, unblock or list %s\n", args[0], hint)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "fanoutctl node %s: %v\n", args[0], ue.error)
		return 2
	default:
		fmt.Fprintf(stderr, "fanoutctl node %s: %v\n", args[0], err)
		return 1
	}
}

type usageError struct{ error }

// parse parses a subcommand's flags: --help prints them to stdout and exits 0; a bad flag is one line with a hint,
// never a flag dump.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	if err := cliflag.Parse(fs, args, "", stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// target is a pod cgroup chosen by --pod-uid or --cgroup.
type target struct {
	path string
	id   uint64
	uid  string
}

func findTarget(root, podUID, cgroupPath string) (target, error) {
	switch {
	case podUID != "" && cgroupPath != "":
		return target{}, usageError{errors.New("give --pod-uid or --cgroup, not both")}
	case cgroupPath != "":
		id, err := cgroups.ID(cgroupPath)
		if err != nil {
			return target{}, err
		}
		return target{path: cgroupPath, id: id, uid: cgroups.Parse(cgroupPath).PodUID}, nil
	case podUID != "":
		for _, p := range scanPods(root) {
			if strings.EqualFold(p.uid, podUID) {
				return p, nil
			}
		}
		return target{}, fmt.Errorf("no cgroup of pod %s under %s", podUID, root)
	}
	return target{}, usageError{errors.New("--pod-uid or --cgroup is required")}
}

// scanPods lists pod-level cgroups below root (bounded depth).
func scanPods(root string) []target {
	var out []target
	root = filepath.Clean(root)
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		info := cgroups.Parse(path)
		if info.PodUID != "" && info.ContainerID == "" {
			if id, err := cgroups.ID(path); err == nil {
				out = append(out, target{path: path, id: id, uid: info.PodUID})
			}
			return fs.SkipDir
		}
		if strings.Count(strings.TrimPrefix(path, root), "/") >= 5 {
			return fs.SkipDir
		}
		return nil
	})
	return out
}

func runBlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("fanoutctl node block", flag.ContinueOnError)
	c.register(fs)
	podUID := fs.String("pod-uid", "", "pod UID to block")
	cgroupPath := fs.String("cgroup", "", "pod cgroup directory to block")
	ttl := fs.Duration("ttl", time.Hour, "how long the block holds (0 = until unblocked)")
	workload := fs.String("workload", "", "workload the pod belongs to (Kind/namespace/name), for list and metrics")
	keep := fs.Bool("keep-connections", false, "do not tear down the pod's established API connections")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *ttl < 0 {
		return usageError{errors.New("--ttl must be >= 0")}
	}
	if err := c.resolve(); err != nil {
		return err
	}
	t, err := findTarget(c.cgroupRoot, *podUID, *cgroupPath)
	if err != nil {
		return err
	}
	m, err := blockmap.Open(c.pinDir)
	if err != nil {
		return err
	}
	defer m.Close()
	now, err := blockmap.BootNow()
	if err != nil {
		return err
	}
	e := blockmap.Entry{ExpiresBootNs: blockmap.ExpiresIn(now, *ttl), Flags: blockmap.FlagBreakGlass}
	if *workload != "" {
		e.WorkloadHash = blockmap.WorkloadHash(*workload)
	}
	// An explicit block ends the pod's break-glass exemption (the agent blocks it for its workload again too).
	if n, err := m.ClearExempt(t.id, t.uid); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(stdout, "cleared the break-glass exemption of cgroup %d\n", t.id)
	}
	if err := m.Put(t.id, e); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "blocked cgroup %d (%s) for %s\n", t.id, t.path, ttlString(*ttl))
	if !*keep {
		n, err := teardown(ctx, c.pinDir, t.path)
		if err != nil {
			fmt.Fprintf(stderr, "warning: tearing down established connections: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "tore down %d established API connection(s)\n", n)
		}
	}
	if missing := missingLinks(c.pinDir); len(missing) > 0 {
		return fmt.Errorf("block recorded but NOT enforced: enforce programs not attached in %s (missing %s); "+
			"start the agent for this instance", c.pinDir, strings.Join(missing, ", "))
	}
	return nil
}

func missingLinks(pinDir string) []string { return pindir.Missing(pinDir, pindir.EnforceLinks...) }

func teardown(ctx context.Context, pinDir, podPath string) (int, error) {
	dests, err := sockdestroy.ReadEndpoints(pinDir)
	if err != nil {
		return 0, err
	}
	ids, err := sockdestroy.TreeCgroupIDs(podPath)
	if err != nil {
		return 0, err
	}
	got, err := sockdestroy.Destroy(ctx, sockdestroy.Filter{CgroupIDs: ids, Dests: dests})
	n := 0
	for _, c := range got {
		n += c
	}
	return n, err
}

func runUnblock(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("fanoutctl node unblock", flag.ContinueOnError)
	c.register(fs)
	podUID := fs.String("pod-uid", "", "pod UID to unblock")
	cgroupPath := fs.String("cgroup", "", "pod cgroup directory to unblock")
	cgroupID := fs.Uint64("cgroup-id", 0, "cgroup id to unblock (as shown by list)")
	workload := fs.String("workload", "", "unblock every pod of this workload and drop its directive")
	all := fs.Bool("all", false, "empty the block list")
	ttl := fs.Duration("ttl", 0, "how long the unblocked pods stay exempt from re-blocking "+
		"(default: what remained of the block, else "+defaultExemptTTL.String()+")")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *ttl < 0 {
		return usageError{errors.New("--ttl must be >= 0")}
	}
	if err := c.resolve(); err != nil {
		return err
	}
	m, err := blockmap.Open(c.pinDir)
	if err != nil {
		return err
	}
	defer m.Close()
	entries, err := m.List()
	if err != nil {
		return err
	}
	wls, err := m.ListWorkloads()
	if err != nil {
		return err
	}
	now, err := blockmap.BootNow()
	if err != nil {
		return err
	}
	pods := map[uint64]target{}
	for _, p := range scanPods(c.cgroupRoot) {
		pods[p.id] = p
	}
	// ids are the cgroups to unblock; targeted says the operator named the pod (exempt it even without an entry).
	var ids []uint64
	targeted := false
	switch {
	case *all:
		for id, e := range entries {
			if e.Active(now) {
				ids = append(ids, id)
			} else if err := m.Delete(id); err != nil {
				return err
			}
		}
		for w := range wls {
			if err := m.DeleteWorkload(w); err != nil {
				return err
			}
		}
	case *workload != "":
		h := blockmap.WorkloadHash(*workload)
		for id, e := range entries {
			if e.WorkloadHash == h {
				ids = append(ids, id)
			}
		}
		if err := m.DeleteWorkload(*workload); err != nil {
			return err
		}
	case *cgroupID != 0:
		ids, targeted = append(ids, *cgroupID), true
	default:
		t, err := findTarget(c.cgroupRoot, *podUID, *cgroupPath)
		if err != nil {
			return err
		}
		ids, targeted = append(ids, t.id), true
		pods[t.id] = t
	}
	names := map[uint32]string{}
	for w := range wls {
		names[blockmap.WorkloadHash(w)] = w
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		// The exemption is written before the entry goes, so a running agent never re-blocks in between.
		en, ok := entries[id]
		blocked := ok && en.Active(now)
		if blocked || targeted {
			x := blockmap.Exemption{PodUID: pods[id].uid, Workload: names[en.WorkloadHash]}
			rec, hasRec := wls[x.Workload]
			d := exemptTTL(*ttl, en, blocked, rec, hasRec, now)
			x.ExpiresBootNs = blockmap.ExpiresIn(now, d)
			if err := m.PutExempt(id, x); err != nil {
				return err
			}
			if err := m.Delete(id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "unblocked cgroup %d (%s); exempt from re-blocking for %s\n", id,
				dash(x.Workload), d.Round(time.Second))
			continue
		}
		if err := m.Delete(id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unblocked cgroup %d\n", id)
	}
	if len(ids) == 0 {
		fmt.Fprintln(stdout, "nothing to unblock")
	}
	if _, err := m.Compact(); err != nil {
		return err
	}
	return nil
}

// defaultExemptTTL is the exemption of an unblock when neither --ttl nor a finite block says how long.
const defaultExemptTTL = time.Hour

// exemptTTL is how long an unblock exempts a pod: the --ttl flag when set (> 0); else what remained of the pod's
// active block entry; else what remains of its workload's directive record; else defaultExemptTTL.
func exemptTTL(flag time.Duration, en blockmap.Entry, hasEntry bool, rec blockmap.WorkloadRecord, hasRec bool,
	now uint64) time.Duration {
	if flag > 0 {
		return flag
	}
	if hasEntry {
		if rem := en.Remaining(now); rem > 0 {
			return rem
		}
	}
	if hasRec {
		if rem := (blockmap.Entry{ExpiresBootNs: rec.ExpiresBootNs}).Remaining(now); rem > 0 {
			return rem
		}
	}
	return defaultExemptTTL
}

// Row is one line of `list --json`: a block list entry, or (Exempt) a break-glass exemption.
type Row struct {
	CgroupID   uint64 `json:"cgroup_id"`
	Path       string `json:"path,omitempty"`
	PodUID     string `json:"pod_uid,omitempty"`
	Workload   string `json:"workload,omitempty"`
	Active     bool   `json:"active"`     // the block holds (false for an exemption)
	Exempt     bool   `json:"exempt"`     // a pod lifted by `node unblock`: not blocked again until ExpiresIn
	ExpiresIn  string `json:"expires_in"` // of the block or the exemption: "never", "expired" or a duration
	BreakGlass bool   `json:"break_glass"`
	Denied     uint64 `json:"connects_denied"`
}

// State is the row's STATE column: blocked, expired or exempt.
func (r Row) State() string {
	switch {
	case r.Exempt:
		return "exempt"
	case r.Active:
		return "blocked"
	}
	return "expired"
}

func expiresIn(rem time.Duration) string {
	switch {
	case rem < 0:
		return "never"
	case rem == 0:
		return "expired"
	}
	return rem.Round(time.Second).String()
}

func runList(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("fanoutctl node list", flag.ContinueOnError)
	c.register(fs)
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if err := c.resolve(); err != nil {
		return err
	}
	if !blockmap.Exists(c.pinDir) {
		return fmt.Errorf("no block list in %s (no agent or node command ever ran for this instance)", c.pinDir)
	}
	m, err := blockmap.Open(c.pinDir)
	if err != nil {
		return err
	}
	defer m.Close()
	entries, err := m.List()
	if err != nil {
		return err
	}
	wls, err := m.ListWorkloads()
	if err != nil {
		return err
	}
	exempt, err := m.ListExempt()
	if err != nil {
		return err
	}
	denied, err := blockmap.Denied(c.pinDir)
	if err != nil {
		return err
	}
	names := map[uint32]string{}
	for w := range wls {
		names[blockmap.WorkloadHash(w)] = w
	}
	paths := map[uint64]target{}
	for _, p := range scanPods(c.cgroupRoot) {
		paths[p.id] = p
	}
	now, err := blockmap.BootNow()
	if err != nil {
		return err
	}
	rows := make([]Row, 0, len(entries)+len(exempt))
	for id, e := range entries {
		r := Row{CgroupID: id, Active: e.Active(now), BreakGlass: e.Flags&blockmap.FlagBreakGlass != 0,
			Denied: denied[id], Workload: names[e.WorkloadHash], ExpiresIn: expiresIn(e.Remaining(now))}
		if p, ok := paths[id]; ok {
			r.Path, r.PodUID = p.path, p.uid
		}
		rows = append(rows, r)
	}
	for id, x := range exempt {
		r := Row{CgroupID: id, PodUID: x.PodUID, Workload: x.Workload, Exempt: true, BreakGlass: true,
			Denied: denied[id], ExpiresIn: expiresIn(x.Remaining(now))}
		if p, ok := paths[id]; ok {
			r.Path, r.PodUID = p.path, p.uid
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].CgroupID != rows[j].CgroupID {
			return rows[i].CgroupID < rows[j].CgroupID
		}
		return !rows[i].Exempt && rows[j].Exempt
	})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CGROUP_ID\tPOD_UID\tWORKLOAD\tSTATE\tEXPIRES_IN\tBREAK_GLASS\tDENIED\tPATH")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\t%d\t%s\n", r.CgroupID, dash(r.PodUID), dash(r.Workload), r.State(),
			r.ExpiresIn, r.BreakGlass, r.Denied, dash(r.Path))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if missing := missingLinks(c.pinDir); len(missing) > 0 {
		fmt.Fprintf(stderr, "warning: enforce programs not attached in %s: blocks are not enforced\n", c.pinDir)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "ever (no TTL)"
	}
	return d.String()
}
