"""The audit log: every admin action, append-only."""
