package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// transport returns the connection's credentials: TLS with --ca-file (plus a client certificate with --cert-file),
// plaintext otherwise, which is refused when a token would cross it unless --insecure.
func (r *remoteFlags) transport(token string) (credentials.TransportCredentials, error) {
	if (r.certFile == "") != (r.keyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together")
	}
	if r.caFile == "" {
		if r.certFile != "" {
			return nil, errors.New("--cert-file needs --ca-file (a client certificate is only sent over TLS)")
		}
		if token != "" && !r.insecure {
			return nil, errors.New("--token-file without --ca-file would send the token in plaintext; " +
				"set --ca-file (TLS), or pass --insecure to accept that")
		}
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(r.caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no certificates", r.caFile)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: r.serverName, MinVersion: tls.VersionTLS12}
	if r.certFile != "" {
		pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(tc), nil
}
