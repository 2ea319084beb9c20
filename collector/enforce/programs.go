package enforce

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/pindir"
)

// programs holds the loaded enforce object and its cgroup links.
type programs struct {
	objs  bpf.EnforceObjects
	links []link.Link
}

// loadPrograms loads bpf/enforce.bpf.c with its maps pinned by name in pinDir and makes sure connect4/connect6 are
// attached at cgroupPath through pinned links: an existing pinned link on the same cgroup is updated to the new
// programs in place (no gap in enforcement), otherwise a new link is attached and pinned.
func loadPrograms(pinDir, cgroupPath string, log *slog.Logger) (_ *programs, err error) {
	p := &programs{}
	if err := bpf.LoadEnforceObjects(&p.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}); err != nil {
		return nil, fmt.Errorf("load enforce programs: %w", err)
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	for _, a := range []struct {
		name   string
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		{pindir.LinkEnforceConnect4, p.objs.FanoutEnforceConnect4, ebpf.AttachCGroupInet4Connect},
		{pindir.LinkEnforceConnect6, p.objs.FanoutEnforceConnect6, ebpf.AttachCGroupInet6Connect},
	} {
		l, err := pindir.AttachOrUpdate(pindir.Attachment{Dir: pinDir, Name: a.name, Cgroup: cgroupPath,
			Attach: a.attach, Program: a.prog}, log)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", a.name, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

func (p *programs) close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// Uninstall detaches the enforce programs of the instance at pinDir by removing their pinned links and the kill
// switch's own maps (the block list shared with the traffic probe stays). For decommissioning and tests; the agent's
// --uninstall removes the whole instance (pindir.Uninstall).
func Uninstall(pinDir string) error {
	return pindir.Remove(pinDir, append(append([]string{}, pindir.EnforceLinks...), pindir.EnforceMaps...)...)
}
