package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type blocked_entry Enforce enforce.bpf.c -- -O2 -g -Wall -Werror -Wpadded -I/usr/include/x86_64-linux-gnu
