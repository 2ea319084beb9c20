package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/pindir"
	"github.com/fanoutdev/fanout/collector/probe"
	"github.com/fanoutdev/fanout/collector/report"
	"github.com/fanoutdev/fanout/internal/cliflag"
	"github.com/fanoutdev/fanout/internal/profiling"
)

// config is the agent's typed configuration, from flags.
type config struct {
	NodeName          string
	CgroupRoot        string // attach point; "" = the kubelet's pods cgroup under the cgroup2 mount
	PinDir            string // "" = /sys/fs/bpf/fanout/<node>
	APIEndpoints      string // static ip[:port] list
	Kubeconfig        string
	ListenAddress     string
	Interval          time.Duration
	MaxCgroups        uint // 0 = from the node's pod capacity
	APISlots          uint // 0 = probe.DefaultAPISlots
	ProbeMode         probe.Mode
	PodLogsDir        string
	InformerJitter    time.Duration
	PageOutAfter      time.Duration // once, after start-up: page out the binary's pages only start-up touched (0 = never)
	LogLevel          string
	ConfigCheck       bool
	Uninstall         bool
	Profiling         profiling.Config
	DiscoverEndpoints bool // follow the default/kubernetes Service and EndpointSlices
	Enforce           bool // run the kill switch (needs --cgroup.root or the kubelet's pods cgroup)
	EnforceConfig     enforce.Config
	Report            report.Config // aggregator replicas; no addresses = count and export only

	endpoints []probe.Endpoint
	probeMode string
}

const agentSynopsis = `usage: fanout-agent [flags]

The node agent (one per node, a DaemonSet): counts each pod's traffic to the API server in the kernel, exports it on
/metrics, reports it to the aggregators and enforces their kill-switch directives. Needs CAP_BPF, CAP_PERFMON,
CAP_NET_ADMIN and CAP_SYS_RESOURCE (or root), kernel >= 5.8 with BTF, cgroup v2.`

func parseFlags(args []string) (*config, error) {
	c := &config{Report: report.DefaultConfig()}
	fs := flag.NewFlagSet("fanout-agent", flag.ContinueOnError)
	host, _ := os.Hostname()
	if n := os.Getenv("NODE_NAME"); n != "" {
		host = n
	}
	fs.StringVar(&c.NodeName, "node.name", host, "this node's name (pod informer scope, report identity); default $NODE_NAME or the hostname")
	fs.StringVar(&c.CgroupRoot, "cgroup.root", "", "cgroup2 directory to attach at (default: kubepods.slice or kubepods under the cgroup2 mount)")
	fs.StringVar(&c.PinDir, "bpf.pin-dir", "", "instance pin dir for maps and links (default /sys/fs/bpf/fanout/<node.name>)")
	fs.UintVar(&c.MaxCgroups, "bpf.max-cgroups", 0, "capacity of the per-cgroup counter map (0 = from the node's pod capacity, 16384 when unknown)")
	fs.UintVar(&c.APISlots, "bpf.api-slots", 0, fmt.Sprintf("size N of the cgroup slot maps: N-1 cgroups with API sockets are counted without hash lookups (0 = %d; further cgroups are counted as exactly, with two hash lookups per response; 296 bytes of kernel memory per slot per CPU)", probe.DefaultAPISlots))
	fs.StringVar(&c.probeMode, "probe.mode", "auto", "traffic probe design: auto (sockops when the kernel supports it), sockops, or cgroup_skb")
	fs.StringVar(&c.APIEndpoints, "api.endpoints", "", "static API-server endpoints, comma separated ip[:port] ([v6]:port); no port = any port")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig for the pod informer (default: in-cluster; without an API server the agent keeps counting)")
	fs.StringVar(&c.PodLogsDir, "pod-logs.dir", "/var/log/pods", "kubelet pod log dir (identity fallback without API server)")
	fs.DurationVar(&c.InformerJitter, "informer.start-jitter", 5*time.Second, "random delay before the pod informer's first LIST")
	fs.StringVar(&c.ListenAddress, "web.listen-address", "127.0.0.1:9810",
		"address for /metrics and /healthz (default loopback only; the chart passes the pod's address, [$(POD_IP)]:9810)")
	fs.DurationVar(&c.Interval, "interval", time.Second, "counter read and report interval")
	fs.DurationVar(&c.PageOutAfter, "memory.page-out-after", time.Minute,
		"once this long after start, give back the pages of the agent's binary that only start-up touched (MADV_PAGEOUT; 0 = never)")
	fs.StringVar(&c.LogLevel, "log.level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.ConfigCheck, "config.check", false, "validate the configuration and exit")
	fs.BoolVar(&c.Uninstall, "uninstall", false, "detach and unpin everything of this instance (traffic probe, kill switch, block list), then exit")
	fs.BoolVar(&c.DiscoverEndpoints, "api.discover", true, "discover API-server endpoints from the default/kubernetes Service and its EndpointSlices (in addition to --api.endpoints)")
	fs.BoolVar(&c.Enforce, "enforce", true, "enforce kill-switch directives on this node (connect deny, socket teardown)")
	c.Profiling.RegisterFlags(fs)
	c.EnforceConfig.RegisterFlags(fs)
	c.Report.RegisterFlags(fs)
	if err := cliflag.Parse(fs, args, agentSynopsis, os.Stdout); err != nil {
		return nil, err // flag.ErrHelp after --help (exit 0), else a one-line *cliflag.UsageError
	}
	if fs.NArg() > 0 {
		return nil, cliflag.Usagef(fs.Name(), "unexpected arguments %q (the agent takes flags only)", fs.Args())
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("--node.name is required"))
	}
	if c.PinDir == "" {
		c.PinDir = pindir.ForInstance(c.NodeName)
	}
	if !filepath.IsAbs(c.PinDir) {
		errs = append(errs, fmt.Errorf("--bpf.pin-dir %q: must be absolute", c.PinDir))
	}
	if c.CgroupRoot != "" {
		if st, err := os.Stat(c.CgroupRoot); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--cgroup.root %q: not a directory", c.CgroupRoot))
		}
	}
	eps, err := probe.ParseEndpoints(c.APIEndpoints)
	if err != nil {
		errs = append(errs, fmt.Errorf("--api.endpoints: %w", err))
	}
	c.endpoints = eps
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--interval %s: must be at least 100ms", c.Interval))
	}
	if c.ProbeMode, err = probe.ParseMode(c.probeMode); err != nil {
		errs = append(errs, fmt.Errorf("--probe.mode: %w", err))
	}
	if c.MaxCgroups > 1<<22 {
		errs = append(errs, fmt.Errorf("--bpf.max-cgroups %d: out of range", c.MaxCgroups))
	}
	if c.APISlots == 1 || c.APISlots > probe.MaxAPISlots {
		errs = append(errs, fmt.Errorf("--bpf.api-slots %d: want 0 (default) or 2..%d", c.APISlots, probe.MaxAPISlots))
	}
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			errs = append(errs, fmt.Errorf("--kubeconfig: %w", err))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log.level %q: want debug, info, warn or error", c.LogLevel))
	}
	c.Report.Node = c.NodeName
	if len(c.Report.Addresses) > 0 {
		if err := c.Report.Check(); err != nil {
			errs = append(errs, fmt.Errorf("aggregator: %w", err))
		}
	}
	c.Profiling.AppName = "fanout-agent"
	c.Profiling.Tags = map[string]string{"node": c.NodeName}
	return errors.Join(errs...)
}
