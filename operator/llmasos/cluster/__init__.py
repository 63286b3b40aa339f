"""Kubernetes adapters: `build_*` renders objects (no I/O); `ensure_*`/`delete_*` apply them idempotently."""
