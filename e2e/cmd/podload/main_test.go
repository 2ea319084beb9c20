package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

func TestDeniedClassification(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api/v1/pods", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EPERM)}}
	reset := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api", Err: &net.OpError{
		Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	flat := errors.New(`Get "https://127.0.0.1:6443/api/v1/pods": dial tcp 127.0.0.1:6443: connect: operation not permitted`)
	for _, err := range []error{dial, reset, flat, fmt.Errorf("list: %w", dial)} {
		if !denied(err) {
			t.Errorf("not classified as denied: %v", err)
		}
	}
	for _, err := range []error{errors.New("the server is currently unable to handle the request"), syscall.ECONNREFUSED} {
		if denied(err) {
			t.Errorf("classified as denied: %v", err)
		}
	}
	var c counters
	c.record(0, 0, dial)
	c.record(3, 100, nil)
	c.record(0, 0, errors.New("timeout"))
	l := c.take()
	if l.OK != 1 || l.Denied != 1 || l.Err != 1 || l.Items != 3 || l.Bytes != 100 || l.LastErr != "timeout" {
		t.Fatalf("line %+v", l)
	}
	if l2 := c.take(); l2.OK+l2.Denied+l2.Err != 0 || l2.LastErr != "" {
		t.Fatalf("take must reset: %+v", l2)
	}
}
