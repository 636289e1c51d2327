"""Talking to AWS: its config files, the one client factory, its errors, source profile keys."""
