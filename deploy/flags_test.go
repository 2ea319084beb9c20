package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fanoutdev/fanout/internal/testpki"
)

// TestChartArgsAcceptedByBinaries renders the chart (default values, the remediation/hostNetwork variant with every
// optional flag switched on, and the committed plain manifests), takes each container's command line, points the
// in-cluster file paths at temp files holding valid content (the rendered Secrets' tokens) and runs the real binaries,
// built from this repository, with those args plus --config.check. A flag renamed in a binary but not in the chart (or
// the other way round), a token file in the wrong format or a missing required flag makes it fail.
func TestChartArgsAcceptedByBinaries(t *testing.T) {
	bins := buildBinaries(t)
	committed, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	variants := []struct {
		name string
		raw  []byte
	}{
		{"default", render(t, "tls.nodes={node-a,node-b}")},
		{"remediation-hostnetwork", render(t,
			"aggregator.remediation.enabled=true", "aggregator.remediation.dryRun=true", "aggregator.hostNetwork=true",
			"aggregator.addresses={10.0.0.10:9401,10.0.0.11:9401}", "aggregator.dryRun=true",
			"aggregator.apiserverCapacity.requestsPerSecond=5000", "aggregator.apiserverCapacity.rxBytesPerSecond=5e8",
			"auth.admin.enabled=true", "tls.nodes={node-a}", "profiling.url=http://127.0.0.1:4040",
			"agent.apiEndpoints=10.0.0.1:6443", "agent.cgroupRoot=/sys/fs/cgroup/kubepods.slice",
			"agent.aggregatorMerge=majority", "agent.enforce=false")},
		{"headroom-explicit-urls", render(t, "tls.nodes={node-a}",
			"aggregator.headroom.apiserverURLs={https://10.0.0.1:6443,https://[fd00::1]:6443}", "aggregator.headroom.interval=2s")},
		{"headroom-prometheus-no-placement", render(t, "tls.nodes={node-a}",
			"aggregator.headroom.prometheusURL=http://prometheus-operated.monitoring:9090", "aggregator.placement.watch=false")},
		{"committed-manifests", committed},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			objs := decodeObjects(t, v.raw)
			secrets := renderedSecrets(t, objs)
			for name, data := range externalSecrets(t) {
				if _, ok := secrets[name]; !ok {
					secrets[name] = data
				}
			}
			ds := convert[appsv1.DaemonSet](t, find(objs, "DaemonSet", "fanout-agent"))
			dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "fanout-aggregator"))
			flagFiles := map[string]string{} // file flag -> materialized path
			for _, c := range []struct {
				spec      corev1.PodSpec
				container string
				mustHave  []string
			}{
				{ds.Spec.Template.Spec, "agent", []string{"--aggregator.address", "--aggregator.ca-file", "--aggregator.cert-file",
					"--aggregator.key-file", "--aggregator.server-name", "--enforce.protected"}},
				{dep.Spec.Template.Spec, "aggregator", []string{"--listen", "--tls.cert", "--tls.key", "--tls.client-ca", "--killswitch.protected",
					"--headroom.interval", "--state.file", "--headroom.state-file"}},
			} {
				root := t.TempDir()
				ctr, args := materialize(t, root, c.spec, c.container, secrets)
				for _, f := range c.mustHave {
					if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, f+"=") }) {
						t.Errorf("%s: no %s flag in %v", c.container, f, args)
					}
				}
				for _, a := range args {
					if f, v, ok := strings.Cut(a, "="); ok {
						flagFiles[f] = v
					}
				}
				for _, a := range args {
					if a == "--insecure" || strings.HasPrefix(a, "--insecure=") || strings.HasSuffix(a, "token-file") {
						t.Errorf("%s: the chart passes %s: agents must authenticate by certificate over TLS", c.container, a)
					}
				}
				if len(ctr.Command) != 1 {
					t.Fatalf("%s: command %v, want the binary alone", c.container, ctr.Command)
				}
				bin := filepath.Join(bins, path.Base(ctr.Command[0]))
				out, err := runCheck(bin, args)
				if err != nil {
					if i := bytes.Index(out, []byte("Usage of")); i > 0 {
						out = out[:i]
					}
					t.Errorf("%s %s --config.check: %v\n%s", bin, strings.Join(args, " "), err, out)
				}
			}
			// Both binaries loaded their certificates under --config.check; check here that they fit together: the
			// agent (node-a) verifies the aggregators' certificate under --aggregator.server-name, the aggregators verify
			// the agent's against --tls.client-ca, and the agent's certificate names node-a and no other node.
			checkMutualTLS(t, flagFiles, "node-a")
		})
	}

	// The check can fail: a misspelled flag makes each binary exit non-zero under --config.check.
	for _, b := range []string{"fanout-agent", "fanout-aggregator"} {
		if out, err := runCheck(filepath.Join(bins, b), []string{"--auth.agent-token-file=/nonexistent", "--no-such.flag=1"}); err == nil {
			t.Errorf("%s accepted an unknown flag:\n%s", b, out)
		}
	}
}

func checkMutualTLS(t *testing.T, files map[string]string, node string) {
	t.Helper()
	srvPair, err := tls.LoadX509KeyPair(files["--tls.cert"], files["--tls.key"])
	if err != nil {
		t.Fatalf("aggregator certificate: %v", err)
	}
	cliPair, err := tls.LoadX509KeyPair(files["--aggregator.cert-file"], files["--aggregator.key-file"])
	if err != nil {
		t.Fatalf("agent certificate: %v", err)
	}
	pool := func(path string) *x509.CertPool {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s: no certificates", path)
		}
		return p
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvPair}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool(files["--tls.client-ca"])})
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	peer := make(chan []*x509.Certificate, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			peer <- nil
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- nil
			return
		}
		peer <- tc.ConnectionState().PeerCertificates
	}()
	c, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: pool(files["--aggregator.ca-file"]),
		ServerName: files["--aggregator.server-name"], Certificates: []tls.Certificate{cliPair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("agent -> aggregator TLS handshake: %v", err)
	}
	_ = c.Close()
	certs := <-peer
	if len(certs) == 0 {
		t.Fatal("aggregator did not verify the agent's certificate")
	}
	if cn, dns := certs[0].Subject.CommonName, certs[0].DNSNames; cn != node || (len(dns) > 0 && !slices.Equal(dns, []string{node})) {
		t.Errorf("agent certificate names CN %q DNS %v, want %s only", cn, dns, node)
	}
}

// runCheck runs a binary with args plus --config.check, bounded in time, with no environment but PATH (no NODE_NAME,
// no KUBERNETES_SERVICE_HOST), from an empty directory.
func runCheck(bin string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(slices.Clone(args), "--config.check")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// buildBinaries builds the agent and aggregator from this repository into a temp dir.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/fanout-agent", "./cmd/fanout-aggregator", "./cmd/fanoutctl")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// renderedSecrets decodes the data of every rendered Secret.
func renderedSecrets(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string][]byte {
	t.Helper()
	out := map[string]map[string][]byte{}
	for _, o := range objs {
		if o.GetKind() != "Secret" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		m := map[string][]byte{}
		for k, v := range data {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("secret %s key %s: %v", o.GetName(), k, err)
			}
			m[k] = b
		}
		out[o.GetName()] = m
	}
	return out
}

// externalSecrets is what deploy/README.md tells users to create when they set tls.existingServerSecret,
// tls.existingAgentSecret or auth.admin.existingSecret (the plain manifests reference the TLS Secrets without rendering
// them): a CA, the aggregators' certificate for DNS fanout-aggregator, node-a's client certificate.
func externalSecrets(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	ca, err := testpki.New(t.TempDir(), "ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("server", "fanout-aggregator")
	if err != nil {
		t.Fatal(err)
	}
	node, err := ca.Client("node-a", "node-a", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string]map[string][]byte{
		"fanout-tls-server": {"ca.crt": read(ca.CAFile), "server.crt": read(srv.CertFile), "server.key": read(srv.KeyFile)},
		"fanout-tls-agents": {"ca.crt": read(ca.CAFile), "node-a.crt": read(node.CertFile), "node-a.key": read(node.KeyFile)},
		"fanout-admin":      {"token": []byte("ext-admin-token-0123456789\n")},
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// materialize returns the named container and its args as they would run in a pod, with every path under a volume
// mount moved under root: secret volumes become files holding the (rendered or documented external) Secret's keys,
// other volumes empty directories (paths under a hostPath mount existing directories); $(VAR) references to downward-API env vars become plausible values.
func materialize(t *testing.T, root string, spec corev1.PodSpec, name string, secrets map[string]map[string][]byte) (corev1.Container, []string) {
	t.Helper()
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("no container %q", name)
	}
	ctr := spec.Containers[i]
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	type repl struct {
		from, to string
		host     bool // hostPath: paths under it are host directories that exist
	}
	var repls []repl
	for _, m := range ctr.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Fatalf("%s: mount %s has no volume", name, m.Name)
		}
		dst := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		repls = append(repls, repl{m.MountPath, dst, v.HostPath != nil})
		if v.Secret == nil {
			continue
		}
		data, ok := secrets[v.Secret.SecretName]
		if !ok {
			t.Fatalf("%s: secret %q neither rendered nor documented", name, v.Secret.SecretName)
		}
		items := v.Secret.Items
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				t.Fatalf("%s: secret %s has no key %q", name, v.Secret.SecretName, it.Key)
			}
			if err := os.WriteFile(filepath.Join(dst, it.Path), b, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Longest mount path first, so nested mounts win.
	slices.SortFunc(repls, func(a, b repl) int { return len(b.from) - len(a.from) })

	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = map[string]string{"spec.nodeName": "node-a", "metadata.name": "fanout-aggregator-7d9f8-x2x4q",
				"metadata.namespace": namespace, "status.podIP": "10.244.0.7", "status.hostIP": "10.0.0.10"}[e.ValueFrom.FieldRef.FieldPath]
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	var args []string
	for _, a := range ctr.Args {
		a = envRef.ReplaceAllStringFunc(a, func(ref string) string {
			v, ok := env[ref[2:len(ref)-1]]
			if !ok || v == "" {
				t.Errorf("%s: arg %q references %s, not a defined env var with a value", name, a, ref)
			}
			return v
		})
		if flag, val, ok := strings.Cut(a, "="); ok {
			for _, r := range repls {
				if val == r.from || strings.HasPrefix(val, r.from+"/") {
					a = flag + "=" + r.to + val[len(r.from):]
					if r.host {
						if err := os.MkdirAll(r.to+val[len(r.from):], 0o755); err != nil {
							t.Fatal(err)
						}
					}
					break
				}
			}
		}
		args = append(args, a)
	}
	return ctr, args
}
