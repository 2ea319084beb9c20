package identity

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodIdentity is what fanout knows about a pod.
type PodIdentity struct {
	UID       string
	Namespace string
	Name      string
	// Workload is Kind/namespace/name: Deployment/default/web, DaemonSet/kube-system/kube-proxy, Pod/ns/name, ...
	Workload string
	// Source says where the identity came from: "apiserver" or "podlogs" (fallback; workload is then Pod/ns/name).
	Source string
}

// Sources of a PodIdentity.
const (
	SourceAPIServer = "apiserver"
	SourcePodLogs   = "podlogs"
)

// Workload names the workload owning a pod (docs/interfaces.md): a ReplicaSet whose name is
// <deployment>-<pod-template-hash> belongs to Deployment/<ns>/<deployment>; a Job named <cronjob>-<digits> to
// CronJob/<ns>/<cronjob>; other controllers are named by their own kind; a pod without a controller is Pod/ns/name.
func Workload(pod *corev1.Pod) string {
	return WorkloadFromOwner(pod.Namespace, pod.Name, pod.Labels["pod-template-hash"], metav1.GetControllerOf(pod))
}

// WorkloadFromOwner is Workload from the parts of a pod it looks at.
func WorkloadFromOwner(namespace, podName, templateHash string, owner *metav1.OwnerReference) string {
	if owner == nil {
		return "Pod/" + namespace + "/" + podName
	}
	switch owner.Kind {
	case "ReplicaSet":
		if templateHash != "" && strings.HasSuffix(owner.Name, "-"+templateHash) {
			return "Deployment/" + namespace + "/" + strings.TrimSuffix(owner.Name, "-"+templateHash)
		}
	case "Job":
		if i := strings.LastIndexByte(owner.Name, '-'); i > 0 && i < len(owner.Name)-1 && allDigits(owner.Name[i+1:]) {
			return "CronJob/" + namespace + "/" + owner.Name[:i]
		}
	}
	return owner.Kind + "/" + namespace + "/" + owner.Name
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// SystemdUnitWorkload names a host process's workload: SystemdUnit//<unit>.
func SystemdUnitWorkload(unit string) string { return "SystemdUnit//" + unit }

// UnknownWorkload names an unresolved cgroup: Unknown//cgroup-<id>.
func UnknownWorkload(cgroupID uint64) string {
	return "Unknown//cgroup-" + uitoa(cgroupID)
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
