"""Pure planning: carbon windows, node-pool choice, power policy and accounting math (no I/O, no Kubernetes)."""
