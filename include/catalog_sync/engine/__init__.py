"""The sync engine: runs, per-record isolation, delta detection, dead letters, audit and rollback."""
