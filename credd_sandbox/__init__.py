"""A local AWS stand-in for the demo and the tests (``python -m credd_sandbox``).

One endpoint URL for every service: a strict STS written here (TOTP codes checked and never
reused, duration bounds, role chaining cap, unique keys, SigV4 verified with botocore's signer,
expiry on a movable clock), IAM ListMFADevices, and moto behind it for IAM, S3 and SQS.
See docs/sandbox.md.

This package's top level imports only the standard library (the server modules import botocore,
werkzeug, pyotp and moto when started).
"""

from credd_sandbox.client import AdminClient, MfaDevice, SandboxError, SandboxRole, SandboxUser
from credd_sandbox.process import SandboxProcess

__all__ = [
    "AdminClient",
    "MfaDevice",
    "SandboxError",
    "SandboxProcess",
    "SandboxRole",
    "SandboxUser",
]
