package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/collector/nodectl"
	"github.com/fanoutdev/fanout/internal/cliflag"
)

// remoteFlags are the flags of commands that talk to an aggregator.
type remoteFlags struct {
	addr       string
	tokenFile  string
	caFile     string
	serverName string
	certFile   string
	keyFile    string
	insecure   bool
	timeout    time.Duration
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.addr, "aggregator", "127.0.0.1:7443", "aggregator host:port")
	fs.StringVar(&r.tokenFile, "token-file", os.Getenv("FANOUT_TOKEN_FILE"), "file holding the bearer token (admin token for trip/release); default $FANOUT_TOKEN_FILE")
	fs.StringVar(&r.caFile, "ca-file", "", "CA bundle to verify the aggregator (enables TLS)")
	fs.StringVar(&r.serverName, "server-name", "", "TLS server name to verify")
	fs.StringVar(&r.certFile, "cert-file", "", "client certificate (aggregators run with --tls.require-client-cert)")
	fs.StringVar(&r.keyFile, "key-file", "", "client key for --cert-file")
	fs.BoolVar(&r.insecure, "insecure", false, "send the --token-file token over plaintext gRPC (no --ca-file): anyone on the path can read and replay it")
	fs.DurationVar(&r.timeout, "timeout", 5*time.Second, "per-call timeout")
}

type bearerCreds struct {
	token  string
	secure bool
}

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if b.token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerCreds) RequireTransportSecurity() bool { return b.secure }

func (r *remoteFlags) dial() (*grpc.ClientConn, error) {
	var tok string
	if r.tokenFile != "" {
		b, err := os.ReadFile(r.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		tok = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	tc, err := r.transport(tok)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+r.addr, grpc.WithTransportCredentials(tc),
		grpc.WithPerRPCCredentials(bearerCreds{token: tok, secure: r.caFile != ""}))
	if err != nil {
		return nil, fmt.Errorf("dial aggregator %s: %w", r.addr, err)
	}
	return conn, nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fanoutctl status", flag.ContinueOnError)
	var rf remoteFlags
	rf.register(fs)
	if code, ok := parse(fs, args, "usage: fanoutctl status [flags]\n\nShows the aggregator's fleet view and active directives.", stdout, stderr); !ok {
		return code
	}
	st, err := fetchStatus(ctx, &rf)
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl status: %v\n", err)
		return 1
	}
	printStatus(stdout, st, 20)
	if len(st.GetDirectives()) > 0 {
		fmt.Fprintln(stdout, "\nactive directives:")
		for _, d := range st.GetDirectives() {
			fmt.Fprintf(stdout, "  %-7s %s epoch=%d %s\n", strings.TrimPrefix(d.GetAction().String(), "ACTION_"), d.GetWorkload(), d.GetEpoch(), d.GetReason())
		}
	}
	return 0
}

func fetchStatus(ctx context.Context, rf *remoteFlags) (*api.StatusResponse, error) {
	conn, err := rf.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, rf.timeout)
	defer cancel()
	st, err := api.NewAggregatorClient(conn).Status(cctx, &api.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status from %s: %w", rf.addr, err)
	}
	return st, nil
}

func printStatus(w io.Writer, st *api.StatusResponse, limit int) {
	mode := ""
	if st.GetDryRun() {
		mode = "  (dry-run)"
	}
	fmt.Fprintf(w, "replica %s  window %s  nodes reporting %d  API server utilization %.0f%%%s\n\n",
		st.GetReplica(), st.GetWindow().AsTime().UTC().Format(time.TimeOnly), st.GetNodesReporting(), st.GetApiserverUtilization()*100, mode)
	if h := st.GetHeadroom(); h != nil {
		fresh := "API server metrics fresh"
		if !h.GetApiserverFresh() {
			fresh = "API server metrics stale or not configured"
		}
		fmt.Fprintf(w, "headroom: %s; %s\n\n", h.GetSummary(), fresh)
	}
	ws := append([]*api.WorkloadStatus(nil), st.GetWorkloads()...)
	sort.SliceStable(ws, func(a, b int) bool { return ws[a].GetRequestsPerS() > ws[b].GetRequestsPerS() })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKLOAD\tSTATE\tREQ/S\tBASE REQ/S\tRX/S\tCONN/S\tPODS\tNODES\tSYNC\tPROJECTED\tCOST\t")
	for i, x := range ws {
		if limit > 0 && i >= limit {
			break
		}
		state := x.GetState()
		if x.GetProtected() {
			state += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%.1f\t%d\t%d\t%d\t%.0f%%\t%.1f%%\t\n", x.GetWorkload(), state, x.GetRequestsPerS(),
			x.GetBaselineRequestsPerS(), human(x.GetRxBytesPerS()), x.GetConnectsPerS(), x.GetPods(), x.GetNodes(), x.GetSynchronizedNodes(),
			x.GetProjectedLoadRatio()*100, x.GetCostRatio()*100)
	}
	_ = tw.Flush()
	printEnforcement(w, st.GetWorkloads())
}

func human(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0fB", b)
}

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fanoutctl top", flag.ContinueOnError)
	var rf remoteFlags
	rf.register(fs)
	interval := fs.Duration("interval", time.Second, "refresh interval")
	iterations := fs.Int("iterations", 0, "stop after this many refreshes (0: until interrupted)")
	limit := fs.Int("n", 30, "rows to show")
	noClear := fs.Bool("no-clear", false, "do not clear the screen between refreshes")
	if code, ok := parse(fs, args, "usage: fanoutctl top [flags]\n\nLive table of workloads by fleet API rate and cost.", stdout, stderr); !ok {
		return code
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for i := 0; *iterations == 0 || i < *iterations; i++ {
		st, err := fetchStatus(ctx, &rf)
		if !*noClear {
			fmt.Fprint(stdout, "\033[H\033[2J")
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s  %v\n", time.Now().Format(time.TimeOnly), err)
		} else {
			printStatus(stdout, st, *limit)
		}
		if *iterations != 0 && i+1 >= *iterations {
			break
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
	return 0
}

func runManual(ctx context.Context, trip bool, args []string, stdout, stderr io.Writer) int {
	name := map[bool]string{true: "trip", false: "release"}[trip]
	fs := flag.NewFlagSet("fanoutctl "+name, flag.ContinueOnError)
	var rf remoteFlags
	rf.register(fs)
	reason := fs.String("reason", "", "why (required, goes to the audit log)")
	ttl := fs.Duration("ttl", 0, "trip: release automatically after this long (0: until released by hand)")
	synopsis := fmt.Sprintf("usage: fanoutctl %s [flags] Kind/namespace/name --reason WHY", name)
	if code, ok := parse(fs, args, synopsis, stdout, stderr); !ok {
		return code
	}
	switch {
	case fs.NArg() == 0:
		return usageErr(stderr, cliflag.Usagef(fs.Name(), "missing the workload: %s", strings.TrimPrefix(synopsis, "usage: ")))
	case fs.NArg() > 1:
		return usageErr(stderr, cliflag.Usagef(fs.Name(), "one workload at a time, got %d (%s); flags go before the workload", fs.NArg(), strings.Join(fs.Args(), " ")))
	case *reason == "":
		return usageErr(stderr, cliflag.Usagef(fs.Name(), "--reason is required (it goes to the audit log)"))
	}
	conn, err := rf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl %s: %v\n", name, err)
		return 1
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, rf.timeout)
	defer cancel()
	req := &api.ManualRequest{Workload: fs.Arg(0), Reason: *reason}
	if *ttl > 0 {
		req.Ttl = durationpb.New(*ttl)
	}
	c := api.NewAggregatorClient(conn)
	var resp *api.ManualResponse
	if trip {
		resp, err = c.Trip(cctx, req)
	} else {
		resp, err = c.Release(cctx, req)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl %s %s: %v\n", name, fs.Arg(0), err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s (epoch %d)\n", fs.Arg(0), resp.GetState(), resp.GetEpoch())
	return 0
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return nodectl.Run(ctx, args, stdout, stderr)
}
