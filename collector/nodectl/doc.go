// Package nodectl is the node-local break-glass CLI behind `fanoutctl node block|unblock|list`. It works directly on
// an agent instance's pinned block list (collector/blockmap) and needs neither the agent, the API server nor DNS:
// blocks written here are enforced by the pinned enforce programs at once, expire by their TTL in the kernel, and
// are adopted (kept, flagged break-glass) by an agent that starts later. An unblock records a break-glass exemption
// (blockmap.Exemption, TTL from --ttl or what remained of the block) so that neither a restarted agent nor a later
// block directive blocks the pod again; `node block` of the pod clears it, and `node list` shows it with its workload
// and expiry. It embeds no BPF programs.
package nodectl
