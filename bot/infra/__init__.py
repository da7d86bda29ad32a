"""Process infrastructure: metrics and health, per-chat isolation, memory, the draining dispatcher."""
