package cgroups

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const uid = "0f4a1b2c-3d4e-5f60-7182-93a4b5c6d7e8"
	const uidU = "0f4a1b2c_3d4e_5f60_7182_93a4b5c6d7e8"
	const cid = "4b825dc642cb6eb9a060e54bf8d69288fbee4904b825dc642cb6eb9a060e54bf"
	tests := []struct {
		name string
		path string
		want Info
	}{
		{"systemd containerd burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			Info{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: "containerd"}},
		{"systemd cri-o besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope",
			Info{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: "cri-o"}},
		{"systemd cri-o conmon",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			Info{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid, Runtime: "cri-o"}},
		{"systemd docker guaranteed",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + cid + ".scope",
			Info{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: "docker"}},
		{"systemd pod level", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
			Info{PodUID: uid, QoS: QoSBurstable}},
		{"systemd container sub-cgroup",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope/init",
			Info{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid, Runtime: "containerd"}},
		{"cgroupfs containerd besteffort", "/kubepods/besteffort/pod" + uid + "/" + cid,
			Info{PodUID: uid, QoS: QoSBestEffort, ContainerID: cid}},
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + cid,
			Info{PodUID: uid, QoS: QoSGuaranteed, ContainerID: cid}},
		{"cgroupfs cri-o", "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			Info{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: "cri-o"}},
		{"cgroupfs docker", "/kubepods/burstable/pod" + uid + "/docker-" + cid + ".scope",
			Info{PodUID: uid, QoS: QoSBurstable, ContainerID: cid, Runtime: "docker"}},
		{"simulated node", "/fanout-sim/node-3/kubepods/besteffort/pod" + uid + "/app",
			Info{PodUID: uid, QoS: QoSBestEffort, ContainerID: "app"}},
		{"static pod uid", "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + cid,
			Info{PodUID: "0123456789abcdef0123456789abcdef", QoS: QoSBurstable, ContainerID: cid}},
		{"qos level only", "/kubepods.slice/kubepods-burstable.slice", Info{}},
		{"kubepods root", "/kubepods", Info{}},
		{"host service", "/system.slice/kubelet.service", Info{SystemdUnit: "kubelet.service"}},
		{"host containerd", "/system.slice/containerd.service", Info{SystemdUnit: "containerd.service"}},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", Info{SystemdUnit: "session-3.scope"}},
		{"service sub-cgroup", "/system.slice/docker.service/sub", Info{SystemdUnit: "docker.service"}},
		{"bare cgroup", "/fanout-test-1/a", Info{}},
		{"bad uid", "/kubepods/besteffort/podnotauid/x", Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.path); got != tt.want {
				t.Errorf("Parse(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestFindCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, mounts, want string
		err                bool
	}{
		{"hybrid", "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n",
			"/sys/fs/cgroup/unified", false},
		{"unified prefers /sys/fs/cgroup", "cgroup2 /run/x/cg cgroup2 rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n",
			"/sys/fs/cgroup", false},
		{"escaped", `cgroup2 /mnt/my\040cg cgroup2 rw 0 0`, "/mnt/my cg", false},
		{"none", "proc /proc proc rw 0 0\n", "", true},
	}
	for _, tt := range tests {
		got, err := FindCgroup2Mount(strings.NewReader(tt.mounts))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q (err %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
}
