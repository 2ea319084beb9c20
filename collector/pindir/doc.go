// Package pindir owns an agent instance's pin directory (/sys/fs/bpf/fanout/<instance>): the names of every pinned
// map and link, setting the directory up on a bpffs (mounting bpffs at /sys/fs/bpf when missing), attaching a
// cgroup program through a pinned link or updating the pinned link in place (no gap in counting or enforcement), and
// uninstalling an instance. The traffic probe, the kill switch, the block list, the socket teardown, `fanoutctl node`
// and the agent's --uninstall all go through it. It embeds no BPF programs, so the CLI can use it.
package pindir
