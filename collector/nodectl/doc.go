// Package nodectl is the node-local break-glass CLI behind `fanoutctl node block|unblock|list`. It works directly on
// an agent instance's pinned block list (collector/blockmap) and needs neither the agent, the API server nor DNS:
// blocks written here are enforced by the pinned enforce programs at once, expire by their TTL in the kernel, and
// are adopted (kept, flagged break-glass) by an agent that starts later. It embeds no BPF programs.
package nodectl
