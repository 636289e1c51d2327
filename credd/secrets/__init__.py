"""Where secrets live: the keyring store and file stores; no module outside imports keyring."""
