"""The long-running process: main loop, systemd units and notify, desktop notices, detaching."""
