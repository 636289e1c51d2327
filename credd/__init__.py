"""credd: a per-user daemon that keeps AWS session credentials fresh.

Importing this package is cheap on purpose: the ``credential_process`` path
(``credd get``) must start at interpreter speed, so nothing heavy is imported here.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
