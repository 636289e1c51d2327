"""The engine: per-node state, single-flight refreshes, the schedule, saved sessions and the
commit lock (see docs/architecture.md)."""
