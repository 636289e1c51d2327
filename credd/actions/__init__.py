"""One-shot operations a command asks for: key rotation, presigned URLs, console sign-in."""
