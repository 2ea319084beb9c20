package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type cgroup_traffic -type api_endpoint_key -type api_endpoint_value -type api_filter_value -type api_fast_v4 -type blocked_entry -type api_sock Traffic traffic.bpf.c -- -O2 -g -Wall -Werror -Wpadded -I/usr/include/x86_64-linux-gnu
