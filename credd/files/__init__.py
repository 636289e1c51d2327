"""The files credd writes: INI edits, the credentials and config files, safe writes, leases."""
