package cgroups

import (
	"strings"
)

// QoS is a pod's Kubernetes QoS class as encoded in its cgroup path.
type QoS string

// QoS classes.
const (
	QoSGuaranteed QoS = "guaranteed"
	QoSBurstable  QoS = "burstable"
	QoSBestEffort QoS = "besteffort"
)

// Info is what a cgroup path says about its processes.
type Info struct {
	// PodUID is the pod's UID with dashes ("0f4a1b2c-..."); empty when the cgroup is not in a pod.
	PodUID string
	QoS    QoS
	// ContainerID is the runtime's container id (64 hex chars usually); empty for the pod-level cgroup.
	ContainerID string
	// Runtime is "containerd", "cri-o", "docker" or "" when the container cgroup name carries no runtime prefix
	// (cgroupfs driver with containerd/docker).
	Runtime string
	// SystemdUnit is the innermost systemd unit (kubelet.service, session-3.scope) of a host process; empty in pods.
	SystemdUnit string
}

// InPod reports whether the cgroup belongs to a pod.
func (i Info) InPod() bool { return i.PodUID != "" }

// Parse interprets a cgroup path (relative to the cgroup2 mount or absolute; a kubepods component may sit below
// other levels, as for simulated nodes: /node-3/kubepods/besteffort/pod<uid>/<ctr>). It understands the kubelet's
// systemd driver (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/
// cri-containerd-<id>.scope) and cgroupfs driver (kubepods/burstable/pod<uid>/<id>), with containerd
// (cri-containerd-), cri-o (crio-, crio-conmon-) and docker (docker-) naming.
func Parse(path string) Info {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	kp := -1
	for i, p := range parts {
		if p == "kubepods" || p == "kubepods.slice" {
			kp = i
			break
		}
	}
	if kp < 0 {
		return Info{SystemdUnit: innermostUnit(parts)}
	}
	var info Info
	info.QoS = QoSGuaranteed
	for _, p := range parts[kp+1:] {
		if info.PodUID != "" {
			// The level below the pod is the container (deeper levels are the container's own sub-cgroups).
			info.ContainerID, info.Runtime = parseContainer(p)
			break
		}
		if q, ok := parseQoS(p); ok {
			info.QoS = q
			continue
		}
		if uid, ok := parsePod(p); ok {
			info.PodUID = uid
			continue
		}
		break
	}
	if info.PodUID == "" {
		info.QoS = ""
	}
	return info
}

func parseQoS(p string) (QoS, bool) {
	switch p {
	case "burstable", "kubepods-burstable.slice":
		return QoSBurstable, true
	case "besteffort", "kubepods-besteffort.slice":
		return QoSBestEffort, true
	}
	return "", false
}

// parsePod accepts "pod<uid>" (cgroupfs) and "kubepods[-<qos>]-pod<uid_with_underscores>.slice" (systemd).
func parsePod(p string) (string, bool) {
	if strings.HasSuffix(p, ".slice") {
		i := strings.LastIndex(p, "-pod")
		if i < 0 || !strings.HasPrefix(p, "kubepods") {
			return "", false
		}
		uid := strings.ReplaceAll(strings.TrimSuffix(p[i+len("-pod"):], ".slice"), "_", "-")
		return uid, validUID(uid)
	}
	if uid, ok := strings.CutPrefix(p, "pod"); ok && validUID(uid) {
		return uid, true
	}
	return "", false
}

// validUID accepts RFC 4122 style UIDs (36 chars, hex and dashes) and, for static/mirror pods, 32 hex chars.
func validUID(s string) bool {
	if len(s) != 36 && len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') {
			continue
		}
		return false
	}
	return true
}

var runtimePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", "containerd"},
	{"crio-conmon-", "cri-o"},
	{"crio-", "cri-o"},
	{"docker-", "docker"},
	{"containerd-", "containerd"},
}

func parseContainer(p string) (id, runtime string) {
	name := strings.TrimSuffix(p, ".scope")
	for _, rp := range runtimePrefixes {
		if rest, ok := strings.CutPrefix(name, rp.prefix); ok {
			return rest, rp.runtime
		}
	}
	return name, ""
}

// innermostUnit returns the deepest systemd unit name (.service, .scope, .socket, .mount) in a path, skipping
// slices; "" when none.
func innermostUnit(parts []string) string {
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		for _, suf := range []string{".service", ".scope", ".socket", ".mount", ".swap"} {
			if strings.HasSuffix(p, suf) {
				return p
			}
		}
	}
	return ""
}
