"""User-facing subcommands of `llmasos` (each module exposes `register(subparsers)`)."""
