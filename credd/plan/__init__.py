"""Plans: which calls give each profile its credentials (nodes, the planner, the lifetime guard)."""
