package sockdestroy

import (
	"encoding/binary"
	"net/netip"
)

// inet_diag bytecode (linux/inet_diag.h). Every compiled fragment of length L accepts by falling through to offset L
// and rejects by jumping to L+4, so fragments compose like iproute2's ssfilter: AND concatenates (relocating the
// first fragment's rejects), OR inserts a JMP between the fragments.
const (
	bcJMP        = 1
	bcDCond      = 8
	bcCgroupCond = 13

	opLen = 4
)

type bcOp struct {
	code byte
	yes  byte
	no   uint16
}

func putOp(b []byte, op bcOp) {
	b[0] = op.code
	b[1] = op.yes
	binary.NativeEndian.PutUint16(b[2:], op.no)
}

// leaf returns a condition op followed by its payload.
func leaf(code byte, payload []byte) []byte {
	n := opLen + len(payload)
	b := make([]byte, n)
	putOp(b, bcOp{code: code, yes: byte(n), no: uint16(n + 4)})
	copy(b[opLen:], payload)
	return b
}

func cgroupCond(id uint64) []byte {
	var p [8]byte
	binary.NativeEndian.PutUint64(p[:], id)
	return leaf(bcCgroupCond, p[:])
}

// dstCond matches the remote address (and port, 0 = any) of a socket: struct inet_diag_hostcond + address.
func dstCond(addr netip.Addr, port uint16) []byte {
	a := addr.Unmap()
	var raw []byte
	family, plen := byte(afInet), byte(32)
	if a.Is4() {
		b := a.As4()
		raw = b[:]
	} else {
		b := a.As16()
		raw = b[:]
		family, plen = afInet6, 128
	}
	p := make([]byte, 8+len(raw))
	p[0], p[1] = family, plen
	var pt int32 = -1
	if port != 0 {
		pt = int32(port)
	}
	binary.NativeEndian.PutUint32(p[4:], uint32(pt))
	copy(p[8:], raw)
	return leaf(bcDCond, p)
}

// walk visits the ops of a fragment in yes-chain order (every op of our fragments lies on it).
func walk(b []byte, fn func(pos int)) {
	for pos := 0; pos < len(b); pos += int(b[pos+1]) {
		fn(pos)
	}
}

// and returns a AND b.
func and(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+len(b))
	out = append(out, a...)
	walk(out[:len(a)], func(pos int) {
		no := int(binary.NativeEndian.Uint16(out[pos+2:]))
		if pos+no == len(a)+4 { // a's reject: now past the end of a+b
			binary.NativeEndian.PutUint16(out[pos+2:], uint16(no+len(b)))
		}
	})
	return append(out, b...)
}

// or returns a OR b: a's reject lands on b; a's accept reaches a JMP over b.
func or(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+opLen+len(b))
	out = append(out, a...)
	var j [opLen]byte
	putOp(j[:], bcOp{code: bcJMP, yes: opLen, no: uint16(opLen + len(b))})
	out = append(out, j[:]...)
	return append(out, b...)
}

func orAll(frags [][]byte) []byte {
	if len(frags) == 0 {
		return nil
	}
	out := frags[0]
	for _, f := range frags[1:] {
		out = or(out, f)
	}
	return out
}

// compile returns the filter (cgroup1 OR cgroup2 ...) AND (dst1 OR dst2 ...).
func compile(cgroups []uint64, dsts []Destination) []byte {
	cg := make([][]byte, 0, len(cgroups))
	for _, id := range cgroups {
		cg = append(cg, cgroupCond(id))
	}
	ds := make([][]byte, 0, len(dsts))
	for _, d := range dsts {
		ds = append(ds, dstCond(d.Addr, d.Port))
	}
	return and(orAll(cg), orAll(ds))
}

// run interprets bytecode like the kernel's inet_diag_bc_run (for tests): sock is the socket's cgroup id, remote
// address and port.
func run(b []byte, cgroup uint64, dst netip.Addr, dport uint16) bool {
	l := len(b)
	pos := 0
	for l > 0 {
		code, yesOff, noOff := b[pos], int(b[pos+1]), int(binary.NativeEndian.Uint16(b[pos+2:]))
		yes := true
		switch code {
		case bcJMP:
			yes = false
		case bcCgroupCond:
			yes = binary.NativeEndian.Uint64(b[pos+4:]) == cgroup
		case bcDCond:
			fam, port := b[pos+4], int32(binary.NativeEndian.Uint32(b[pos+8:]))
			if port != -1 && port != int32(dport) {
				yes = false
				break
			}
			d := dst.Unmap()
			if fam == afInet {
				yes = d.Is4() && d.As4() == [4]byte(b[pos+12:pos+16])
			} else {
				yes = !d.Is4() && d.As16() == [16]byte(b[pos+12:pos+28])
			}
		}
		if yes {
			pos, l = pos+yesOff, l-yesOff
		} else {
			pos, l = pos+noOff, l-noOff
		}
	}
	return l == 0
}
