// Package cgroups finds the cgroup2 mount and the kubelet's pods cgroup, maps cgroup ids (the inode of a cgroup
// directory) to paths, and parses pod UID, container id, runtime and QoS class (systemd and cgroupfs drivers;
// containerd, cri-o and docker naming) or the systemd unit of host processes from a cgroup path.
package cgroups
