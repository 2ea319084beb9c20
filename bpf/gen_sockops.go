package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type cgroup_health -type api_sock -type api_slot Sockops sockops.bpf.c -- -O2 -g -Wall -Werror -Wpadded -I/usr/include/x86_64-linux-gnu
