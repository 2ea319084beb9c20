package profiling

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"time"

	"github.com/grafana/pyroscope-go"
)

// Config of continuous profiling.
type Config struct {
	ServerURL   string            // ingest endpoint, e.g. http://pyroscope:4040; empty disables profiling
	AppName     string            // application name, e.g. fanout-agent
	Tags        map[string]string // static tags, e.g. node=<name>
	UploadEvery time.Duration     // upload interval (pyroscope default 15 s)
	BasicAuth   string            // optional user:password
}

// RegisterFlags binds the profiling flags (--pyroscope.*) to cfg.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ServerURL, "pyroscope.url", "", "push continuous profiles to this Pyroscope ingest URL (empty: off)")
	fs.DurationVar(&c.UploadEvery, "pyroscope.upload-interval", 15*time.Second, "profile upload interval")
	fs.StringVar(&c.BasicAuth, "pyroscope.basic-auth", "", "optional user:password for the profile endpoint")
}

// Start begins profiling and returns a function that flushes and stops it. With an empty ServerURL it does nothing.
func Start(_ context.Context, cfg Config, logger *slog.Logger) (stop func() error, err error) {
	if cfg.ServerURL == "" {
		return func() error { return nil }, nil
	}
	if cfg.AppName == "" {
		return nil, fmt.Errorf("start profiling: app name is required")
	}
	user, pass := splitAuth(cfg.BasicAuth)
	// Mutex and block profiles are empty unless sampling is on; a low rate keeps the cost negligible.
	runtime.SetMutexProfileFraction(20)
	runtime.SetBlockProfileRate(int(time.Millisecond))
	p, err := pyroscope.Start(pyroscope.Config{
		ApplicationName:   cfg.AppName,
		ServerAddress:     cfg.ServerURL,
		Tags:              maps.Clone(cfg.Tags),
		UploadRate:        cfg.UploadEvery,
		BasicAuthUser:     user,
		BasicAuthPassword: pass,
		Logger:            slogAdapter{logger.With("component", "profiling")},
		ProfileTypes: []pyroscope.ProfileType{
			pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
			pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
			pyroscope.ProfileMutexCount, pyroscope.ProfileMutexDuration, pyroscope.ProfileBlockCount,
			pyroscope.ProfileBlockDuration,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start profiling: %w", err)
	}
	logger.Info("continuous profiling on", "url", cfg.ServerURL, "app", cfg.AppName)
	return p.Stop, nil
}

func splitAuth(s string) (user, pass string) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// slogAdapter implements pyroscope's printf-style Logger on slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Debugf(format string, args ...any) { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Warn(fmt.Sprintf(format, args...)) }
