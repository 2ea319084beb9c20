package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fanoutdev/fanout/internal/childproc"
	"github.com/fanoutdev/fanout/internal/loopbackport"
)

// AdminUser is the token user in system:masters (exempt from API Priority and Fairness): use it for set-up only.
const AdminUser = "fanout-admin"

// Config of a control plane.
type Config struct {
	// Users are normal (non-exempt) token users created besides the admin; each gets a token and no permissions
	// until a test binds a role.
	Users []string
	// WorkDir holds data, certificates and logs; a temp dir when empty (removed on Close unless KeepWorkDir).
	WorkDir     string
	KeepWorkDir bool
	// ExtraAPIServerFlags are appended to kube-apiserver's command line (e.g. "--max-requests-inflight=50").
	ExtraAPIServerFlags []string
	// AuditUsers, when set, get one audit event per request in <WorkDir>/audit.log (others are not audited): see
	// ControlPlane.AuditCounts.
	AuditUsers []string
	Logger     *slog.Logger
}

// ControlPlane is a running etcd + kube-apiserver pair on loopback.
type ControlPlane struct {
	URL     string // https://127.0.0.1:<port>
	Host    string // 127.0.0.1
	Port    int
	WorkDir string
	CAPEM   []byte

	etcdURL  string
	auditLog string
	tokens   map[string]string
	procs    []*exec.Cmd
	logger   *slog.Logger
	cleanup  bool

	closeOnce sync.Once
	closeErr  error
}

// Start builds (if needed) and starts etcd and kube-apiserver, and waits until /readyz answers ok.
func Start(ctx context.Context, cfg Config) (*ControlPlane, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bins, err := EnsureBinaries(ctx, logger)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Host: "127.0.0.1", logger: logger, tokens: map[string]string{}}
	cp.WorkDir = cfg.WorkDir
	if cp.WorkDir == "" {
		if cp.WorkDir, err = os.MkdirTemp("", "fanout-cp-"); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
		cp.cleanup = !cfg.KeepWorkDir
	} else if err := os.MkdirAll(cp.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			cp.Close() //nolint:errcheck // best effort after a failed start
		}
	}()
	if err := cp.startEtcd(ctx, bins.Etcd); err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, bins.KubeAPIServer, cfg); err != nil {
		return nil, err
	}
	ok = true
	return cp, nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context, bin string) error {
	clientPort, err := FreePort()
	if err != nil {
		return err
	}
	peerPort, err := FreePort()
	if err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	args := []string{
		"--name=fanout-e2e", "--data-dir=" + filepath.Join(cp.WorkDir, "etcd"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=fanout-e2e=" + peer, "--log-level=warn",
		"--quota-backend-bytes=4294967296", "--unsafe-no-fsync",
	}
	if err := cp.spawn(bin, "etcd", args); err != nil {
		return err
	}
	if err := childproc.PollHTTP(ctx, &http.Client{Timeout: time.Second}, client+"/health", 30*time.Second, nil); err != nil {
		return fmt.Errorf("etcd not healthy: %w (log %s)", err, filepath.Join(cp.WorkDir, "etcd.log"))
	}
	cp.etcdURL = client
	return nil
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, bin string, cfg Config) error {
	p, err := writePKI(cp.WorkDir)
	if err != nil {
		return fmt.Errorf("write pki: %w", err)
	}
	cp.CAPEM = p.caPEM
	var tokens strings.Builder
	for i, user := range append([]string{AdminUser}, cfg.Users...) {
		tok := randomToken()
		cp.tokens[user] = tok
		groups := "system:authenticated"
		if user == AdminUser {
			groups = "system:masters"
		}
		fmt.Fprintf(&tokens, "%s,%s,uid-%d,\"%s\"\n", tok, user, i, groups)
	}
	tokenFile := filepath.Join(cp.WorkDir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens.String()), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if cp.Port, err = FreePort(); err != nil {
		return err
	}
	cp.URL = fmt.Sprintf("https://127.0.0.1:%d", cp.Port)
	args := []string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(cp.Port),
		"--tls-cert-file=" + p.certFile, "--tls-private-key-file=" + p.keyFile, "--client-ca-file=" + p.caFile,
		"--token-auth-file=" + tokenFile, "--authorization-mode=RBAC",
		"--service-account-key-file=" + p.saPubFile, "--service-account-signing-key-file=" + p.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		// A loopback advertise address is rejected by the endpoint reconciler.
		"--endpoint-reconciler-type=none",
		// No controller-manager runs, so nothing would create the default ServiceAccount the admission plugin wants.
		"--disable-admission-plugins=ServiceAccount",
		"--cert-dir=" + filepath.Join(cp.WorkDir, "certs"),
	}
	if len(cfg.AuditUsers) > 0 {
		policy, err := writeAuditPolicy(cp.WorkDir, cfg.AuditUsers)
		if err != nil {
			return err
		}
		cp.auditLog = filepath.Join(cp.WorkDir, "audit.log")
		args = append(args, "--audit-policy-file="+policy, "--audit-log-path="+cp.auditLog, "--audit-log-format=json",
			"--audit-log-mode=batch", "--audit-log-batch-max-wait=1s")
	}
	args = append(args, cfg.ExtraAPIServerFlags...)
	if err := cp.spawn(bin, "kube-apiserver", args); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(cp.RESTConfig(AdminUser))
	if err != nil {
		return fmt.Errorf("admin http client: %w", err)
	}
	hc.Timeout = 2 * time.Second
	if err := childproc.PollHTTP(ctx, hc, cp.URL+"/readyz", 90*time.Second, nil); err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w (log %s)", err, filepath.Join(cp.WorkDir, "kube-apiserver.log"))
	}
	return nil
}

// spawn starts a process in its own process group, logging to <WorkDir>/<name>.log.
func (cp *ControlPlane) spawn(bin, name string, args []string) error {
	logFile, err := os.Create(filepath.Join(cp.WorkDir, name+".log"))
	if err != nil {
		return fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	logFile.Close() // the child holds its own descriptor
	cp.logger.Info("started", "process", name, "pid", cmd.Process.Pid)
	cp.procs = append(cp.procs, cmd)
	return nil
}

// Token returns the bearer token of a configured user.
func (cp *ControlPlane) Token(user string) string { return cp.tokens[user] }

// RESTConfig returns a client config for a configured user (AdminUser or one of Config.Users).
func (cp *ControlPlane) RESTConfig(user string) *rest.Config {
	return &rest.Config{
		Host:            cp.URL,
		BearerToken:     cp.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CAPEM},
		QPS:             -1, // no client-side throttling: the server's own limits are what the tests measure
		UserAgent:       "fanout-e2e/" + user,
	}
}

// WriteKubeconfig writes a kubeconfig file for user and returns its path.
func (cp *ControlPlane) WriteKubeconfig(user string) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: cp.CAPEM}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cp.tokens[user]}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	kc.CurrentContext = "e2e"
	path := filepath.Join(cp.WorkDir, "kubeconfig-"+user)
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("write kubeconfig: %w", err)
	}
	return path, nil
}

// PIDs of the processes this control plane started.
func (cp *ControlPlane) PIDs() []int {
	var pids []int
	for _, c := range cp.procs {
		pids = append(pids, c.Process.Pid)
	}
	return pids
}

// Close stops kube-apiserver then etcd (SIGTERM to each process group, SIGKILL after 10 s) and removes the work dir.
func (cp *ControlPlane) Close() error {
	cp.closeOnce.Do(func() {
		var errs []error
		for i := len(cp.procs) - 1; i >= 0; i-- {
			errs = append(errs, stopProcess(cp.procs[i], 10*time.Second))
		}
		if cp.cleanup {
			errs = append(errs, os.RemoveAll(cp.WorkDir))
		}
		cp.closeErr = errors.Join(errs...)
	})
	return cp.closeErr
}

func stopProcess(cmd *exec.Cmd, grace time.Duration) error {
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-done:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("process %d did not exit after SIGKILL", pid)
		}
	}
}

// FreePort returns a free TCP port on 127.0.0.1 for a child process to bind (internal/loopbackport: never the same
// port twice in a process, never one from the ephemeral range outgoing connections draw from).
func FreePort() (int, error) {
	p, err := loopbackport.Pick()
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return p, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
