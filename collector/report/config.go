package report

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Merge modes.
const (
	MergeAny      = "any"
	MergeMajority = "majority"
)

// Config configures the client.
type Config struct {
	// Addresses of the aggregator replicas (host:port, IPs need no DNS).
	Addresses []string
	Node      string
	// TokenFile holds the bearer token (first line).
	TokenFile string
	// TLS: CAFile enables TLS; CertFile/KeyFile add a client certificate (mTLS); ServerName overrides verification.
	CAFile, CertFile, KeyFile, ServerName string
	// Insecure allows sending the bearer token without TLS (no CAFile): anyone on the path can read it.
	Insecure               bool
	Merge                  string
	Buffer                 int
	BackoffMin, BackoffMax time.Duration
	// StaleAfter drops a disconnected replica's directives from the merge after this long.
	StaleAfter time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Merge: MergeAny, Buffer: 30, BackoffMin: 500 * time.Millisecond, BackoffMax: 30 * time.Second, StaleAfter: 30 * time.Second}
}

// RegisterFlags binds the config to flags under the "aggregator." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	add := func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Addresses = append(c.Addresses, a)
			}
		}
		return nil
	}
	fs.Func("aggregator.address", "aggregator replica host:port (repeatable or comma separated)", add)
	fs.Func("aggregator.addresses", "alias of --aggregator.address", add)
	fs.StringVar(&c.TokenFile, "aggregator.token-file", c.TokenFile, "file holding this agent's bearer token")
	fs.StringVar(&c.CAFile, "aggregator.ca-file", c.CAFile, "CA bundle to verify aggregators (enables TLS)")
	fs.StringVar(&c.CertFile, "aggregator.cert-file", c.CertFile, "client certificate for mTLS (CN = node name)")
	fs.StringVar(&c.KeyFile, "aggregator.key-file", c.KeyFile, "client key for mTLS")
	fs.StringVar(&c.ServerName, "aggregator.server-name", c.ServerName, "TLS server name to verify (default: the address host)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "send the --aggregator.token-file token over plaintext gRPC (no --aggregator.ca-file): anyone on the path can read and replay it")
	fs.StringVar(&c.Merge, "aggregator.merge", c.Merge, "how replicas' directives combine: any or majority")
	fs.IntVar(&c.Buffer, "aggregator.buffer", c.Buffer, "reports buffered per replica while disconnected (oldest dropped)")
	fs.DurationVar(&c.BackoffMin, "aggregator.backoff-min", c.BackoffMin, "first reconnect delay")
	fs.DurationVar(&c.BackoffMax, "aggregator.backoff-max", c.BackoffMax, "maximum reconnect delay")
	fs.DurationVar(&c.StaleAfter, "aggregator.stale-after", c.StaleAfter, "forget a disconnected replica's directives after this long")
}

func (c *Config) validate() error {
	if len(c.Addresses) == 0 {
		return fmt.Errorf("no aggregator addresses")
	}
	if c.Node == "" {
		return fmt.Errorf("no node name")
	}
	if c.Merge != MergeAny && c.Merge != MergeMajority {
		return fmt.Errorf("merge: want any or majority, got %q", c.Merge)
	}
	if c.Buffer < 1 {
		return fmt.Errorf("buffer must be >= 1")
	}
	if c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("bad backoff %s..%s", c.BackoffMin, c.BackoffMax)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("cert-file and key-file go together")
	}
	if c.CertFile != "" && c.CAFile == "" {
		return fmt.Errorf("--aggregator.cert-file needs --aggregator.ca-file (a client certificate is only sent over TLS)")
	}
	if c.TokenFile != "" && c.CAFile == "" && !c.Insecure {
		return fmt.Errorf("--aggregator.token-file without --aggregator.ca-file would send the token in plaintext; " +
			"set --aggregator.ca-file (TLS), or pass --insecure to accept that")
	}
	return nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

// Check validates the configuration and reads the token and TLS files, as New would: for an agent's --config.check.
func (c *Config) Check() error {
	if err := c.validate(); err != nil {
		return err
	}
	if _, err := readToken(c.TokenFile); err != nil {
		return err
	}
	if c.CAFile != "" {
		if _, err := clientTLS(*c); err != nil {
			return err
		}
	}
	return nil
}
