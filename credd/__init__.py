"""credd: a per-user daemon that keeps AWS session credentials fresh.

The public API, for Python programs (docs/python.md)::

    import credd

    session = credd.boto3_session("work")        # refreshes itself from the daemon
    try:
        creds = credd.Client().credentials("work")
    except credd.NeedsPerson as exc:
        print(exc.message, exc.hint)

Importing this package is cheap on purpose: the ``credential_process`` path (``credd get``)
must start at interpreter speed, so nothing is imported here. Each public name is imported the
first time it is looked up (PEP 562 ``__getattr__``); ``__all__`` is pinned by a test.
"""

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs ~9 ms
if TYPE_CHECKING:
    from credd.client import Client, aiobotocore_session, boto3_session
    from credd.errors import (
        AwsError,
        ConfigError,
        CreddError,
        CredentialsFileError,
        DaemonUnavailable,
        LifetimeUnavailable,
        LoginRequired,
        MfaError,
        NeedsMfa,
        NeedsPerson,
        NotReady,
        ProfileNotFound,
        ProfileNotManaged,
        RequestError,
        SecretStoreError,
        VaultError,
    )
    from credd.models import Credentials

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "Client": "credd.client",
    "boto3_session": "credd.client",
    "aiobotocore_session": "credd.client",
    "Credentials": "credd.models",
    # the errors a program can see from the daemon (Client, credd get); docs/python.md#errors
    "CreddError": "credd.errors",
    "DaemonUnavailable": "credd.errors",
    "NotReady": "credd.errors",
    "NeedsPerson": "credd.errors",
    "NeedsMfa": "credd.errors",
    "LoginRequired": "credd.errors",
    "MfaError": "credd.errors",
    "ConfigError": "credd.errors",
    "ProfileNotFound": "credd.errors",
    "ProfileNotManaged": "credd.errors",
    "AwsError": "credd.errors",
    "VaultError": "credd.errors",
    "SecretStoreError": "credd.errors",
    "CredentialsFileError": "credd.errors",
    "LifetimeUnavailable": "credd.errors",
    "RequestError": "credd.errors",
}

__all__ = [
    "AwsError",
    "Client",
    "ConfigError",
    "CreddError",
    "Credentials",
    "CredentialsFileError",
    "DaemonUnavailable",
    "LifetimeUnavailable",
    "LoginRequired",
    "MfaError",
    "NeedsMfa",
    "NeedsPerson",
    "NotReady",
    "ProfileNotFound",
    "ProfileNotManaged",
    "RequestError",
    "SecretStoreError",
    "VaultError",
    "__version__",
    "aiobotocore_session",
    "boto3_session",
]


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'credd' has no attribute {name!r}")
    import sys  # built in: costs nothing

    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
