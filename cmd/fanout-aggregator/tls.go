package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
)

func (cfg *Config) registerTLSFlags(fs *flag.FlagSet) {
	fs.StringVar(&cfg.TLSCert, "tls.cert", "", "server certificate (PEM); enables TLS")
	fs.StringVar(&cfg.TLSKey, "tls.key", "", "server key (PEM)")
	fs.StringVar(&cfg.TLSClientCA, "tls.client-ca", "",
		"CA for agents' client certificates (mTLS): a certificate speaks for the one node in its CN (or its only DNS name)")
	fs.BoolVar(&cfg.TLSRequireCert, "tls.require-client-cert", false,
		"refuse every connection without a client certificate from --tls.client-ca (agents and fanoutctl alike)")
	fs.BoolVar(&cfg.Insecure, "insecure", false,
		"accept agent and admin bearer tokens over plaintext gRPC (no --tls.cert): anyone on the path can read and replay them")
}

// checkTransport validates the TLS flags and refuses bearer tokens over plaintext unless --insecure.
func (cfg *Config) checkTransport() error {
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls.cert and --tls.key go together")
	}
	if cfg.TLSClientCA != "" && cfg.TLSCert == "" {
		return errors.New("--tls.client-ca needs --tls.cert and --tls.key")
	}
	if cfg.TLSRequireCert && cfg.TLSClientCA == "" {
		return errors.New("--tls.require-client-cert needs --tls.client-ca")
	}
	if cfg.TLSCert == "" && !cfg.Insecure {
		for _, f := range []struct{ flag, val string }{{"--auth.agent-token-file", cfg.AgentTokenFile}, {"--auth.admin-token-file", cfg.AdminTokenFile}} {
			if f.val != "" {
				return fmt.Errorf("%s without --tls.cert: bearer tokens would cross the network in plaintext; "+
					"set --tls.cert and --tls.key (and --tls.client-ca for mTLS), or pass --insecure to accept that", f.flag)
			}
		}
	}
	return nil
}

func (cfg *Config) warnInsecure(logger *slog.Logger) {
	if cfg.TLSCert == "" && (cfg.AgentTokenFile != "" || cfg.AdminTokenFile != "") {
		logger.Warn("--insecure: accepting bearer tokens over plaintext gRPC; anyone on the path can read and replay them")
	}
}

func serverTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no certificates", cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		// Without --tls.require-client-cert, token-only clients (fanoutctl with an admin token) may still connect over
		// TLS; a certificate, when presented, is verified.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.TLSRequireCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}
