package enforce

import (
	"path"
	"strings"
)

// DefaultProtected are workload patterns (path.Match syntax over `Kind/namespace/name`; `*` does not cross `/`)
// that are never blocked: DNS, CNI and node networking, control-plane static pods, and fanout itself.
var DefaultProtected = []string{
	"*/kube-system/coredns", "*/kube-system/kube-dns*", "*/*/coredns", "*/*/node-local-dns*",
	"*/kube-system/kube-proxy", "*/*/calico-*", "*/*/cilium*", "*/*/kube-flannel*", "*/*/flannel*",
	"*/*/weave-net", "*/*/aws-node", "*/*/antrea-*", "*/*/kube-router", "*/*/canal", "*/*/multus*",
	"*/kube-system/etcd*", "*/kube-system/kube-apiserver*", "*/kube-system/kube-controller-manager*",
	"*/kube-system/kube-scheduler*", "*/*/fanout*", "SystemdUnit//*",
}

// criticalPriorityClasses are the built-in priority classes of pods a node cannot live without.
var criticalPriorityClasses = map[string]bool{"system-node-critical": true, "system-cluster-critical": true}

// Refusal reasons (label `reason` of fanout_agent_block_refused_total).
const (
	ReasonProtected = "protected"
	ReasonCritical  = "critical-priority"
	ReasonSelf      = "self"
)

type protector struct {
	patterns []string
}

// workloadProtected returns whether workload matches a protected pattern.
func (p protector) workloadProtected(workload string) bool {
	for _, pat := range p.patterns {
		if ok, _ := path.Match(pat, workload); ok {
			return true
		}
		if strings.EqualFold(pat, workload) {
			return true
		}
	}
	return false
}
