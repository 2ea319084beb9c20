// Package sockdestroy tears down established TCP sockets of given cgroups to given destinations (the API server)
// with netlink sock_diag: a SOCK_DIAG_BY_FAMILY dump filtered in the kernel by INET_DIAG_REQ_BYTECODE (cgroup id
// conditions, kernel >= 4.20, and destination host conditions), then SOCK_DESTROY for each match (the `ss -K`
// mechanism; needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN). IPv4 and IPv6 sockets are covered; IPv4 destinations
// also match IPv4-mapped IPv6 sockets. A destroyed socket's owner sees ECONNABORTED at once, so a client blocked
// by the kill switch drops its connection and its re-dial meets the connect deny.
//
// Socket cgroups are the leaf cgroups the owning process ran in when it created the socket (a container, not the pod);
// TreeCgroupIDs collects a pod cgroup's whole subtree.
package sockdestroy
