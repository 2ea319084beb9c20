package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Tokens maps bearer tokens to the node they belong to ("*" = shared by any node).
type Tokens struct {
	byToken map[string]string
}

// LoadAgentTokens reads an agent token file: one "TOKEN NODE" per line, NODE "*" for a token shared by all agents;
// blank lines and lines starting with # are ignored.
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
		node := "*"
		if withNode {
			if len(f) < 2 {
				return nil, fmt.Errorf("%s line %d: want \"TOKEN NODE\" (NODE * for a shared token)", name, line)
			}
			node = f[1]
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

// NewTokens builds a token set in memory (tests, benchmarks).
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

// identity is who an agent stream authenticated as: a node name or "*" (any node).
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

// certNode returns the common name of a verified client certificate.
func certNode(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return ti.State.VerifiedChains[0][0].Subject.CommonName, true
}
