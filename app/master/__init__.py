"""The master's side: boot, per-edge supervision, failover and restore."""
