package aggproc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/internal/loopbackport"
)

// AdminToken is the admin bearer token of an aggregator started with Options.Admin.
const AdminToken = "bench-admin-token-0123456789"

// NodeToken is a synthetic node's own bearer token (the aggregator binds each agent credential to one node).
func NodeToken(node string) string { return "bench-token-0123456789-" + node }

// Options says how to start the aggregator.
type Options struct {
	// Bin is the fanout-aggregator binary.
	Bin string
	// Nodes get one agent token each (NodeToken).
	Nodes []string
	// Admin writes an admin token file holding AdminToken.
	Admin bool
	// Args are further flags; the listeners, token files, --insecure, --replica and --audit.file are set here.
	Args []string
}

// Process is a running aggregator.
type Process struct {
	// GRPC and Metrics are its loopback listen addresses.
	GRPC, Metrics string
	PID           int
	// Args are the flags it was started with.
	Args []string
	// Dir holds its token files, LogFile (stderr) and AuditFile; removed by Stop.
	Dir, LogFile, AuditFile string
	cmd                     *exec.Cmd
	log                     *os.File
}

// FreeAddr returns a free loopback address.
func FreeAddr() (string, error) {
	p, err := loopbackport.Pick()
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// Start starts the aggregator and waits until its gRPC port accepts connections. Stop it with Stop.
func Start(ctx context.Context, o Options) (p *Process, err error) {
	if _, err := os.Stat(o.Bin); err != nil {
		return nil, fmt.Errorf("aggregator binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "fanout-bench-agg")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	p = &Process{Dir: dir, LogFile: filepath.Join(dir, "aggregator.log"), AuditFile: filepath.Join(dir, "audit.jsonl")}
	defer func() {
		if err != nil {
			p.Stop()
			p = nil
		}
	}()
	var tokens strings.Builder
	for _, n := range o.Nodes {
		fmt.Fprintf(&tokens, "%s %s\n", NodeToken(n), n)
	}
	tokFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokFile, []byte(tokens.String()), 0o600); err != nil {
		return p, fmt.Errorf("write token file: %w", err)
	}
	if p.GRPC, err = FreeAddr(); err != nil {
		return p, err
	}
	if p.Metrics, err = FreeAddr(); err != nil {
		return p, err
	}
	p.Args = []string{"--listen", p.GRPC, "--metrics.listen", p.Metrics, "--auth.agent-token-file", tokFile, "--insecure",
		"--replica", "bench", "--audit.file", p.AuditFile}
	if o.Admin {
		adminFile := filepath.Join(dir, "admin-tokens")
		if err := os.WriteFile(adminFile, []byte(AdminToken+"\n"), 0o600); err != nil {
			return p, fmt.Errorf("write admin token file: %w", err)
		}
		p.Args = append(p.Args, "--auth.admin-token-file", adminFile)
	}
	p.Args = append(p.Args, o.Args...)
	if p.log, err = os.Create(p.LogFile); err != nil {
		return p, fmt.Errorf("create aggregator log: %w", err)
	}
	p.cmd = exec.CommandContext(ctx, o.Bin, p.Args...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return p, fmt.Errorf("start aggregator: %w", err)
	}
	p.PID = p.cmd.Process.Pid
	for deadline := time.Now().Add(15 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", p.GRPC, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("aggregator did not listen on %s", p.GRPC)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the aggregator (SIGTERM, then SIGKILL after 10 s) and removes its directory.
func (p *Process) Stop() {
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		p.cmd = nil
	}
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
	os.RemoveAll(p.Dir)
}

// LogLines returns the aggregator's log so far, one entry per line.
func (p *Process) LogLines() []string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// Sample is one reading of a process's CPU time and memory.
type Sample struct {
	At  time.Time
	CPU time.Duration
	// RSS is VmRSS; HWM is VmHWM, the peak RSS the kernel saw.
	RSS, HWM int64
}

// Sample reads the aggregator's CPU time and memory from /proc.
func (p *Process) Sample() (Sample, error) { return SampleProc(p.PID) }

// SampleProc reads a process's CPU time and memory from /proc.
func SampleProc(pid int) (Sample, error) {
	s := Sample{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read stat: %w", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	s.CPU = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read status: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		var v int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &v); err == nil {
			s.RSS = v * 1024
		}
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &v); err == nil {
			s.HWM = v * 1024
		}
	}
	return s, nil
}
