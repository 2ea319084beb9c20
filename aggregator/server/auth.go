package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/fanoutdev/fanout/aggregator/ingest"
)

// Tokens maps bearer tokens to the node they belong to. Agent tokens name exactly one node each: a token shared by
// several nodes (the former NODE "*") would let one credential report as a whole fleet, so it is refused.
type Tokens struct {
	byToken map[string]string
}

// LoadAgentTokens reads an agent token file: one "TOKEN NODE" per line, one token per node (a NODE with a wildcard is
// refused, and so is a token listed twice); blank lines and lines starting with # are ignored.
func LoadAgentTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open agent token file: %w", err)
	}
	defer f.Close()
	return parseTokens(f, path, true)
}

// LoadAdminTokens reads an admin token file: one token per line (anything after the token is a comment).
func LoadAdminTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open admin token file: %w", err)
	}
	defer f.Close()
	return parseTokens(f, path, false)
}

func parseTokens(r io.Reader, name string, withNode bool) (*Tokens, error) {
	t := &Tokens{byToken: map[string]string{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f[0]) < 16 {
			return nil, fmt.Errorf("%s line %d: token shorter than 16 characters", name, line)
		}
		node := adminIdentity
		if withNode {
			if len(f) < 2 {
				return nil, fmt.Errorf("%s line %d: want \"TOKEN NODE\"", name, line)
			}
			node = f[1]
			if err := checkNodeIdentity(node); err != nil {
				return nil, fmt.Errorf("%s line %d: %w", name, line, err)
			}
		}
		if _, dup := t.byToken[digest(f[0])]; dup {
			return nil, fmt.Errorf("%s line %d: token listed twice (one token, one node)", name, line)
		}
		t.byToken[digest(f[0])] = node
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(t.byToken) == 0 {
		return nil, fmt.Errorf("%s: no tokens", name)
	}
	return t, nil
}

// NewTokens builds a token set in memory (tests, benchmarks). A node name that is not a valid identity (a wildcard)
// is kept but never authenticates an agent stream.
func NewTokens(tokenToNode map[string]string) *Tokens {
	t := &Tokens{byToken: map[string]string{}}
	for k, v := range tokenToNode {
		t.byToken[digest(k)] = v
	}
	return t
}

// lookup finds a token by its SHA-256 digest, so lookup time says nothing about the token's bytes.
func (t *Tokens) lookup(tok string) (string, bool) {
	if t == nil || tok == "" {
		return "", false
	}
	node, ok := t.byToken[digest(tok)]
	return node, ok
}

func digest(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return string(h[:])
}

// adminIdentity is the node an admin token maps to: never a valid node name, so it cannot authenticate a report.
const adminIdentity = "*"

// checkNodeIdentity refuses a credential that would not bind a stream to exactly one node: an invalid node name, or
// one with a wildcard ("*", "*.example", "node-?").
func checkNodeIdentity(node string) error {
	if strings.ContainsAny(node, "*?[") {
		return fmt.Errorf("node %q: a wildcard credential could report as any node; give each node its own credential", node)
	}
	if !ingest.ValidNode(node) {
		return fmt.Errorf("node %q: not a valid node name", node)
	}
	return nil
}

// identity is who an agent stream authenticated as: exactly one node.
type identity struct {
	node string
	via  string
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

// verifiedCert returns the leaf of a verified client certificate chain, if the peer presented one.
func verifiedCert(ctx context.Context) (*x509.Certificate, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil, false
	}
	return ti.State.VerifiedChains[0][0], true
}

// certNode is the one node a verified client certificate speaks for: its common name, or, when the common name is
// empty, its only DNS name. A certificate naming several nodes, none, or a wildcard is refused.
func certNode(c *x509.Certificate) (string, error) {
	node := c.Subject.CommonName
	if node == "" {
		if len(c.DNSNames) != 1 {
			return "", fmt.Errorf("client certificate has no common name and %d DNS names: want exactly one node", len(c.DNSNames))
		}
		node = c.DNSNames[0]
	}
	for _, d := range c.DNSNames {
		if d != node {
			return "", fmt.Errorf("client certificate for %q also names %q: want exactly one node", node, d)
		}
	}
	if err := checkNodeIdentity(node); err != nil {
		return "", fmt.Errorf("client certificate: %w", err)
	}
	return node, nil
}

// authenticate binds an agent stream to exactly one node: by its bearer token, else by its verified client
// certificate (when cert authentication is on). A token and a certificate on the same stream must name the same node.
func (s *Server) authenticate(ctx context.Context) (identity, error) {
	var id identity
	if tok := bearer(ctx); tok != "" {
		node, ok := s.cfg.AgentTokens.lookup(tok)
		if !ok {
			return identity{}, errors.New("unknown bearer token")
		}
		if err := checkNodeIdentity(node); err != nil {
			return identity{}, fmt.Errorf("bearer token: %w", err)
		}
		id = identity{node: node, via: "token"}
	}
	if cert, ok := verifiedCert(ctx); ok && s.cfg.AllowCertAuth {
		node, err := certNode(cert)
		if err != nil {
			return identity{}, err
		}
		if id.node != "" && id.node != node {
			return identity{}, fmt.Errorf("bearer token for node %q on a connection whose certificate is for %q", id.node, node)
		}
		id = identity{node: node, via: "mtls"}
	}
	if id.node == "" {
		return identity{}, errors.New("no valid bearer token or client certificate")
	}
	return id, nil
}
