package report

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/server"
	"github.com/fanoutdev/fanout/api"
)

type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func (p *pki) issue(t *testing.T, name string, cn string, isCA bool, client bool) (certPath, keyPath string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	parent, signer := tmpl, key
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		parent, signer = p.ca, p.caKey
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if client {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, cert, key
}

// An agent with a client certificate (CN = its node) and no token is accepted over mTLS.
func TestMutualTLSAuthenticatesByCertificate(t *testing.T) {
	p := &pki{dir: t.TempDir()}
	caPath, _, ca, caKey := p.issue(t, "ca", "fanout-ca", true, false)
	p.ca, p.caKey = ca, caKey
	srvCert, srvKey, _, _ := p.issue(t, "server", "aggregator", false, false)
	cliCert, cliKey, _, _ := p.issue(t, "client", "node-a", false, true)

	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := engine.New(engine.DefaultConfig(), nil)
	srv, err := server.New(server.Config{Replica: "r", AllowCertAuth: true}, eng, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	api.RegisterAggregatorServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	go func() { _ = srv.Run(ctx) }()

	cfg := DefaultConfig()
	cfg.Addresses, cfg.Node = []string{lis.Addr().String()}, "node-a"
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = caPath, cliCert, cliKey
	c, err := New(cfg, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Run(ctx) }()
	c.Submit(&api.NodeReport{})
	waitFor(t, "report accepted over mTLS", func() bool {
		return testutil.ToFloat64(c.sent) >= 1 && testutil.ToFloat64(c.connected.WithLabelValues(cfg.Addresses[0])) == 1
	})
	if testutil.ToFloat64(c.errs) != 0 {
		t.Fatalf("stream errors: %v", testutil.ToFloat64(c.errs))
	}
}
