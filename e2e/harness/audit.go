package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// auditPolicy logs one Metadata-level event per request of the listed users and nothing else, so the API footprint
// of chosen clients (fanout's agents) can be counted exactly without slowing the rest of the traffic.
func writeAuditPolicy(dir string, users []string) (string, error) {
	var b strings.Builder
	b.WriteString("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n")
	b.WriteString("- level: Metadata\n  users:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "  - %q\n", u)
	}
	b.WriteString("- level: None\n")
	path := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("write audit policy: %w", err)
	}
	return path, nil
}

// AuditCount is one user's requests by verb (get, list, watch, create, ...), each request counted once.
type AuditCount struct {
	User   string
	Total  int
	ByVerb map[string]int
}

// AuditCounts reads the audit log (Config.AuditUsers) and counts requests per user. Requests still in flight are
// counted once their first event (ResponseStarted for watches) is written.
func (cp *ControlPlane) AuditCounts() (map[string]*AuditCount, error) {
	if cp.auditLog == "" {
		return nil, fmt.Errorf("audit not enabled: set Config.AuditUsers")
	}
	f, err := os.Open(cp.auditLog)
	if os.IsNotExist(err) {
		return map[string]*AuditCount{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	out := map[string]*AuditCount{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev struct {
			AuditID string `json:"auditID"`
			Verb    string `json:"verb"`
			User    struct {
				Username string `json:"username"`
			} `json:"user"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // a line being written while we read
		}
		if seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		c := out[ev.User.Username]
		if c == nil {
			c = &AuditCount{User: ev.User.Username, ByVerb: map[string]int{}}
			out[ev.User.Username] = c
		}
		c.Total++
		c.ByVerb[ev.Verb]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
