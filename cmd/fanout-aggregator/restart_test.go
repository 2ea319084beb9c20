package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

const (
	rtAgentToken = "agent-token-0123456789"
	rtAdminToken = "admin-token-0123456789"
	rtWorkload   = "DaemonSet/demo/telemetry"
)

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return false }

// startAggregator runs the real binary and returns its gRPC address and process.
func startAggregator(t *testing.T, bin string, args ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--metrics.listen", ""}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct {
				Msg  string `json:"msg"`
				GRPC string `json:"grpc"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "aggregator listening" {
				addr <- l.GRPC
			}
		}
	}()
	select {
	case a := <-addr:
		return a, cmd
	case <-time.After(20 * time.Second):
		t.Fatal("aggregator did not start")
	}
	return "", nil
}

// agentRun streams reports for node-1 (the workload's pod, plus the blocks it enforces) for d and returns every
// directive set received.
// agentRun reports as node-1 and collects the directive sets it receives: for at most d, and no longer than 1.5 s
// after the first synced set (a loaded machine may take a while to close the start-up sync).
func agentRun(t *testing.T, addr string, blocked []*api.BlockedEntry, d time.Duration) []*api.DirectiveSet {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds(rtAgentToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	st, err := api.NewAggregatorClient(conn).Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		sets     []*api.DirectiveSet
		syncedAt time.Time
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s, err := st.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			sets = append(sets, s)
			if s.GetStateSynced() && syncedAt.IsZero() {
				syncedAt = time.Now()
			}
			mu.Unlock()
		}
	}()
	seq := uint64(1)
	for tick := time.NewTicker(time.Second); ; seq++ {
		_ = st.Send(&api.NodeReport{Node: "node-1", Sequence: seq, Timestamp: timestamppb.Now(), Interval: durationpb.New(time.Second),
			Workloads: []*api.WorkloadDelta{{Workload: rtWorkload, Pods: 1, Delta: &api.Counters{Requests: 1}}}, Blocked: blocked})
		mu.Lock()
		enough := !syncedAt.IsZero() && time.Since(syncedAt) >= 1500*time.Millisecond
		mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
			if !enough {
				continue
			}
			cancel()
		}
		tick.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return sets
	}
}

func blockOf(s *api.DirectiveSet) *api.Directive {
	for _, d := range s.GetDirectives() {
		if d.GetWorkload() == rtWorkload {
			return d
		}
	}
	return nil
}

// Finding 1 of issue 10: restarting the aggregator (a crash: SIGKILL) while a workload is tripped must not release it.
// The restarted replica says state_synced=false until it has rebuilt its trips, and once synced it still blocks the
// workload at the same epoch: from its state file, and (without one) from the block the agent reports.
func TestRestartKeepsTrips(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the aggregator binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fanout-aggregator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	agents, admins := filepath.Join(dir, "agents"), filepath.Join(dir, "admins")
	if err := os.WriteFile(agents, []byte(rtAgentToken+" node-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(admins, []byte(rtAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	args := []string{"--insecure", "--auth.agent-token-file", agents, "--auth.admin-token-file", admins, "--state.sync-wait", "2s", "--directives.refresh", "500ms"}

	addr, a1 := startAggregator(t, bin, append(args, "--state.file", state)...)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds(rtAdminToken)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(2500 * time.Millisecond) // past the start-up sync
	resp, err := api.NewAggregatorClient(conn).Trip(context.Background(), &api.ManualRequest{Workload: rtWorkload, Reason: "restart test"})
	if err != nil {
		t.Fatalf("trip: %v", err)
	}
	epoch := resp.GetEpoch()
	sets := agentRun(t, addr, nil, 2*time.Second)
	if len(sets) == 0 || blockOf(sets[len(sets)-1]).GetAction() != api.Directive_ACTION_BLOCK || !sets[len(sets)-1].GetStateSynced() {
		t.Fatalf("before the restart: no synced block in %v", sets)
	}
	inc1 := sets[0].GetIncarnation()
	blocked := []*api.BlockedEntry{{Workload: rtWorkload, Epoch: epoch}}

	check := func(name string, sets []*api.DirectiveSet) {
		t.Helper()
		synced := false
		for i, s := range sets {
			if s.GetIncarnation() == inc1 || s.GetIncarnation() == 0 {
				t.Fatalf("%s: set %d has the old/no incarnation %d", name, i, s.GetIncarnation())
			}
			d := blockOf(s)
			if d.GetAction() == api.Directive_ACTION_RELEASE {
				t.Fatalf("%s: set %d releases the workload (re-ramped at once): %v", name, i, s)
			}
			if s.GetStateSynced() {
				synced = true
				if d.GetAction() != api.Directive_ACTION_BLOCK || d.GetEpoch() != epoch {
					t.Fatalf("%s: synced set %d without the block at epoch %d: %v", name, i, epoch, s)
				}
			}
		}
		if !synced || sets[0].GetStateSynced() && blockOf(sets[0]) == nil {
			t.Fatalf("%s: never synced or synced without the block: %v", name, sets)
		}
	}

	// Crash and restart with the state file.
	_ = a1.Process.Signal(syscall.SIGKILL)
	_ = a1.Wait()
	addr, a2 := startAggregator(t, bin, append(args, "--state.file", state)...)
	check("state file", agentRun(t, addr, blocked, 15*time.Second))

	// Crash and restart without any state: the agent's reported block is adopted.
	_ = a2.Process.Signal(syscall.SIGKILL)
	_ = a2.Wait()
	addr, _ = startAggregator(t, bin, args...)
	sets = agentRun(t, addr, blocked, 15*time.Second)
	check("agents' blocks", sets)
	if s := sets[0]; s.GetStateSynced() {
		t.Fatalf("a replica without state started synced: %v", s)
	}
	if !strings.Contains(blockOf(sets[len(sets)-1]).GetReason(), "adopted") {
		t.Logf("last set: %v", sets[len(sets)-1])
	}
}
