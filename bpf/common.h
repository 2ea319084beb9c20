/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Common includes and constants for fanout's BPF programs. UAPI headers only (no vmlinux.h): the programs read
 * __sk_buff / bpf_sock_addr context fields and packet headers, never kernel structs, so they need no CO-RE.
 * Build: clang -target bpfel with -I/usr/include/<arch>-linux-gnu for <asm/types.h>. */
#ifndef FANOUT_COMMON_H
#define FANOUT_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define FANOUT_ETH_P_IP 0x0800
#define FANOUT_ETH_P_IPV6 0x86DD
#define FANOUT_IPPROTO_TCP 6
#define FANOUT_IPPROTO_UDP 17

/* cgroup_skb verdicts */
#define FANOUT_SK_PASS 1
#define FANOUT_SK_DROP 0

#endif /* FANOUT_COMMON_H */
