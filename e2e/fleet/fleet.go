package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/collector/cgroups"
)

// Config of a simulated fleet.
type Config struct {
	// Nodes is how many simulated nodes to create (node-1 ... node-N).
	Nodes int
	// PodloadBin is the e2e/cmd/podload binary (BuildPodload builds one).
	PodloadBin string
	// CgroupRoot is the fleet's own cgroup; default <cgroup2 mount>/fanout-e2e-<pid>. It must not exist yet.
	CgroupRoot string
	// LogDir receives each pod process's stderr (<pod>.log); required.
	LogDir string
	Logger *slog.Logger
}

// Fleet is a set of simulated nodes backed by real cgroups and a real API server.
type Fleet struct {
	// Root is the absolute path of the fleet's cgroup; Mount is the cgroup2 mount point it lives under.
	Root, Mount string
	Nodes       []*Node
	Recorder    *Recorder

	cfg    Config
	admin  kubernetes.Interface
	logger *slog.Logger

	mu     sync.Mutex
	pods   []*Pod
	closed bool
}

// Node is one simulated node: <Root>/<Name> with the kubelet's cgroupfs layout below it.
type Node struct {
	Name string
	// Dir is the node's cgroup (absolute path); an agent for this node attaches here.
	Dir string
	// KubepodsDir is <Dir>/kubepods, the kubelet's pods cgroup.
	KubepodsDir string
}

// Pod is a simulated pod: a real Pod object and its process, born in the container cgroup.
type Pod struct {
	Object      *corev1.Pod
	Workload    *Workload
	Node        *Node
	ContainerID string
	// PodDir and ContainerDir are absolute cgroup paths (kubepods/besteffort/pod<UID>[/<ContainerID>]).
	PodDir, ContainerDir string
	Pid                  int

	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited and its stdout is drained
	waitMu sync.Mutex
	exit   error
}

// New creates the fleet's cgroups and registers a Node object per node in the API server (admin: a system:masters
// client, used only for set-up).
func New(ctx context.Context, cfg Config, admin kubernetes.Interface) (*Fleet, error) {
	if cfg.Nodes < 1 || cfg.Nodes > 1000 {
		return nil, fmt.Errorf("nodes %d out of range [1, 1000]", cfg.Nodes)
	}
	if cfg.PodloadBin == "" || cfg.LogDir == "" {
		return nil, errors.New("fleet config needs PodloadBin and LogDir")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mount, err := cgroups.Cgroup2Mount()
	if err != nil {
		return nil, fmt.Errorf("find cgroup2: %w", err)
	}
	root := cfg.CgroupRoot
	if root == "" {
		root = filepath.Join(mount, fmt.Sprintf("fanout-e2e-%d", os.Getpid()))
	}
	if !strings.HasPrefix(root, mount+"/") {
		return nil, fmt.Errorf("cgroup root %s is not under the cgroup2 mount %s", root, mount)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("create fleet cgroup: %w", err)
	}
	f := &Fleet{Root: root, Mount: mount, Recorder: NewRecorder(), cfg: cfg, admin: admin, logger: logger.With("component", "fleet")}
	ok := false
	defer func() {
		if !ok {
			f.Close() //nolint:errcheck // best effort after a failed set-up
		}
	}()
	for i := 1; i <= cfg.Nodes; i++ {
		n := &Node{Name: fmt.Sprintf("node-%d", i)}
		n.Dir = filepath.Join(root, n.Name)
		n.KubepodsDir = filepath.Join(n.Dir, "kubepods")
		for _, qos := range []string{"besteffort", "burstable"} {
			if err := mkCgroup(filepath.Join(n.KubepodsDir, qos)); err != nil {
				return nil, err
			}
		}
		if err := createNode(ctx, admin, n.Name); err != nil {
			return nil, err
		}
		f.Nodes = append(f.Nodes, n)
	}
	ok = true
	return f, nil
}

// PodSpec says what a pod's process does.
type PodSpec struct {
	// Kubeconfig of the (normal, non-exempt) user the workload runs as.
	Kubeconfig string
	// Args are podload's flags besides --kubeconfig, e.g. {"--mode=list", "--resource=pods"}.
	Args []string
}

// StartPod creates a pod of w on node and starts its process inside the container cgroup: the process is created
// directly in that cgroup (clone3 CLONE_INTO_CGROUP), so every call it makes is attributed to the pod.
func (f *Fleet) StartPod(ctx context.Context, w *Workload, node *Node, spec PodSpec) (*Pod, error) {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, errors.New("fleet closed")
	}
	containerID := randomHex(64)
	obj, err := createPod(ctx, f.admin, w, node.Name, containerID)
	if err != nil {
		return nil, err
	}
	p := &Pod{Object: obj, Workload: w, Node: node, ContainerID: containerID, done: make(chan struct{})}
	p.PodDir = filepath.Join(node.KubepodsDir, "besteffort", "pod"+string(obj.UID))
	p.ContainerDir = filepath.Join(p.PodDir, containerID)
	if err := mkCgroup(p.ContainerDir); err != nil {
		return nil, err
	}
	if err := f.spawn(p, spec); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.pods = append(f.pods, p)
	f.mu.Unlock()
	f.logger.Debug("pod started", "node", node.Name, "pod", obj.Namespace+"/"+obj.Name, "workload", w.ID(), "pid", p.Pid)
	return p, nil
}

func (f *Fleet) spawn(p *Pod, spec PodSpec) error {
	cg, err := os.Open(p.ContainerDir)
	if err != nil {
		return fmt.Errorf("open container cgroup: %w", err)
	}
	defer cg.Close()
	logFile, err := os.Create(filepath.Join(f.cfg.LogDir, p.Node.Name+"_"+p.Object.Name+".log"))
	if err != nil {
		return fmt.Errorf("create pod log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	args := append([]string{"--kubeconfig=" + spec.Kubeconfig}, spec.Args...)
	cmd := exec.Command(f.cfg.PodloadBin, args...)
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "POD_NAME="+p.Object.Name, "POD_NAMESPACE="+p.Object.Namespace, "NODE_NAME="+p.Node.Name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pod stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pod process in %s: %w", p.ContainerDir, err)
	}
	p.cmd, p.Pid = cmd, cmd.Process.Pid
	id := p.Workload.ID()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s Sample
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				f.Recorder.Add(id, s)
			}
		}
		p.waitMu.Lock()
		p.exit = cmd.Wait()
		p.waitMu.Unlock()
	}()
	return nil
}

// InCgroup reports the pod process's cgroup v2 path as the kernel sees it (relative to the cgroup2 mount).
func (p *Pod) InCgroup() (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid))
	if err != nil {
		return "", fmt.Errorf("read cgroup of pid %d: %w", p.Pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("pid %d has no cgroup v2 entry", p.Pid)
}

// Done is closed once the pod's process has exited.
func (p *Pod) Done() <-chan struct{} { return p.done }

// Stop ends the pod's process: SIGTERM to its process group, SIGKILL after grace. Safe to call more than once.
func (p *Pod) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("pod process %d did not exit after SIGKILL", p.Pid)
	}
}

// Pods returns the pods started so far.
func (f *Fleet) Pods() []*Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Pod(nil), f.pods...)
}

// Close stops every pod process (by PID), kills anything left in the fleet's cgroup subtree, and removes it. The API
// objects stay (the control plane is thrown away as a whole).
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	pods := f.pods
	f.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(5 * time.Second); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	errs = append(errs, killCgroupTree(f.Root), removeCgroupTree(f.Root, 5*time.Second))
	return errors.Join(errs...)
}
