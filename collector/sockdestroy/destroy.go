package sockdestroy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	afInet  = unix.AF_INET
	afInet6 = unix.AF_INET6

	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	sockDestroy      = 21 // SOCK_DESTROY

	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	inetDiagCgroupID    = 21 // INET_DIAG_CGROUP_ID (response attribute, kernel >= 5.7)

	reqLen = 56 // struct inet_diag_req_v2
	msgLen = 72 // struct inet_diag_msg

	// TCP states worth destroying: everything but LISTEN, TIME_WAIT, CLOSE and request sockets.
	tcpStates = 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<8 | 1<<9 | 1<<11
)

// Destination is an API-server endpoint: an address and a port (0 = any port).
type Destination struct {
	Addr netip.Addr
	Port uint16
}

// Filter selects the sockets to destroy: TCP sockets whose cgroup is one of CgroupIDs (exact match: pass a pod's
// whole subtree, see TreeCgroupIDs) and whose remote end is one of Dests.
type Filter struct {
	CgroupIDs []uint64
	Dests     []Destination
}

// Destroy aborts every socket matching f and returns how many were destroyed per socket cgroup id. Sockets that
// vanish between the dump and the destroy are not errors. An empty CgroupIDs or Dests matches nothing.
func Destroy(ctx context.Context, f Filter) (map[uint64]int, error) {
	out := make(map[uint64]int)
	if len(f.CgroupIDs) == 0 || len(f.Dests) == 0 {
		return out, nil
	}
	bc := compile(f.CgroupIDs, f.Dests)
	var errs []error
	for _, family := range []uint8{afInet, afInet6} {
		socks, err := dump(ctx, family, bc)
		if err != nil {
			errs = append(errs, fmt.Errorf("dump family %d: %w", family, err))
			continue
		}
		for _, s := range socks {
			err := destroyOne(ctx, family, s.id)
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("destroy socket of cgroup %d: %w", s.cgroup, err))
				continue
			}
			out[s.cgroup]++
		}
	}
	return out, errors.Join(errs...)
}

type diagSock struct {
	id     [48]byte // struct inet_diag_sockid, verbatim (includes the cookie)
	cgroup uint64
}

func request(family uint8, states uint32, id []byte) []byte {
	b := make([]byte, reqLen)
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], states)
	copy(b[8:], id)
	return b
}

func dump(ctx context.Context, family uint8, bc []byte) ([]diagSock, error) {
	payload := request(family, tcpStates, nil)
	attr := make([]byte, unix.NLA_HDRLEN+len(bc))
	binary.NativeEndian.PutUint16(attr[0:], uint16(len(attr)))
	binary.NativeEndian.PutUint16(attr[2:], inetDiagReqBytecode)
	copy(attr[unix.NLA_HDRLEN:], bc)
	payload = append(payload, attr...)

	fd, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := send(fd, sockDiagByFamily, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, payload); err != nil {
		return nil, err
	}
	var out []diagSock
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("receive sock_diag dump: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("parse sock_diag dump: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if e := nlError(m.Data); e != nil {
					return nil, fmt.Errorf("sock_diag dump: %w", e)
				}
				continue
			}
			if len(m.Data) < msgLen {
				continue
			}
			var s diagSock
			copy(s.id[:], m.Data[4:52])
			s.cgroup = cgroupAttr(m.Data[msgLen:])
			out = append(out, s)
		}
	}
}

func cgroupAttr(b []byte) uint64 {
	for len(b) >= unix.NLA_HDRLEN {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff // NLA_TYPE_MASK
		if l < unix.NLA_HDRLEN || l > len(b) {
			return 0
		}
		if typ == inetDiagCgroupID && l >= unix.NLA_HDRLEN+8 {
			return binary.NativeEndian.Uint64(b[unix.NLA_HDRLEN:])
		}
		b = b[min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b)):]
	}
	return 0
}

func destroyOne(ctx context.Context, family uint8, id [48]byte) error {
	fd, err := open(ctx)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := send(fd, sockDestroy, unix.NLM_F_REQUEST|unix.NLM_F_ACK, request(family, tcpStates, id[:])); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("receive SOCK_DESTROY ack: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return fmt.Errorf("parse SOCK_DESTROY ack: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR {
			return nlError(m.Data)
		}
	}
	return nil
}

func nlError(b []byte) error {
	if len(b) < 4 {
		return errors.New("short netlink error")
	}
	if code := int32(binary.NativeEndian.Uint32(b)); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}

func open(ctx context.Context) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("open sock_diag netlink socket: %w", err)
	}
	timeout := 2 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind netlink socket: %w", err)
	}
	return fd, nil
}

func send(fd int, typ uint16, flags uint16, payload []byte) error {
	b := make([]byte, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], 1) // seq
	copy(b[unix.NLMSG_HDRLEN:], payload)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink message %d: %w", typ, err)
	}
	return nil
}
