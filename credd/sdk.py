"""boto3 and aiobotocore sessions whose credentials come from the credd daemon.

A session made here asks the daemon over its unix socket (:class:`credd.client.Client`) and
holds the answer in botocore's own refreshing credentials (``RefreshableCredentials``, or
aiobotocore's ``AioRefreshableCredentials``). botocore decides when to ask again, with its own
windows: from 15 min before expiry it asks once per call and keeps the old credentials if the
daemon cannot answer; from 10 min it blocks on the answer and raises if there is none. The
daemon rotates well before that (docs/architecture.md), so a refresh normally finds new
credentials at once. Nothing is read from, or written to, ``~/.aws/credentials``, and no static
keys are involved.

Region, endpoints (``[services]`` sections, ``AWS_ENDPOINT_URL*``) and other settings come from
the AWS profile of the same name when your AWS config has it, as for any boto3 session; only
the credentials come from credd.

Failures surface as :class:`CreddCredentialError`, a ``botocore.exceptions.
CredentialRetrievalError`` carrying credd's message and the hint saying what to run (``credd mfa
work``, ``credd daemon``...). Import this module only when you use it: it imports botocore
(boto3 and aiobotocore are imported by the function that needs them). ``credd.client`` has
lazy wrappers for both functions.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    RefreshableCredentials,
)
from botocore.exceptions import CredentialRetrievalError

from credd.client import Client
from credd.clock import Clock, SystemClock, isoformat_z, parse_iso
from credd.errors import CreddError, DaemonUnavailable, NotReady

if TYPE_CHECKING:
    import boto3
    from aiobotocore.session import AioSession

__all__ = [
    "METHOD",
    "CreddCredentialError",
    "CreddFetcher",
    "aiobotocore_session",
    "boto3_session",
]

log = logging.getLogger(__name__)

#: ``Credentials.method`` of credentials from credd (what ``session.get_credentials().method``
#: says, next to botocore's ``env``, ``shared-credentials-file``, ``container-role``...).
METHOD = "credd"
#: The daemon answers ``not_ready`` while it fetches (an MFA step, STS); ask again for this long.
NOT_READY_WAIT = 40.0
NOT_READY_PAUSE = 1.0
#: Credentials with no expiry are asked for again after this long (the daemon may change them).
NO_EXPIRY_RECHECK = timedelta(hours=1)


class CreddCredentialError(CredentialRetrievalError):  # type: ignore[misc]
    """credd could not give credentials for a profile.

    A ``botocore.exceptions.CredentialRetrievalError`` (so code that handles botocore's errors
    handles it), whose text is credd's message and hint. ``code`` is credd's stable error code
    (``needs_mfa``, ``daemon_unavailable``, ``profile_not_managed``... see docs/socket-api.md),
    ``hint`` what to run. Picklable, as botocore's errors are.
    """

    fmt = "Error when retrieving credentials from {provider} for profile {profile!r}: {error_msg}"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("provider", "credd")
        kwargs.setdefault("profile", "?")
        kwargs.setdefault("code", "error")
        kwargs.setdefault("hint", None)
        super().__init__(**kwargs)
        self.provider: str = kwargs["provider"]
        self.profile: str = kwargs["profile"]
        self.error_msg: str = kwargs["error_msg"]
        self.code: str = kwargs["code"]
        self.hint: str | None = kwargs["hint"]

    @classmethod
    def from_credd(cls, profile: str, error: CreddError) -> CreddCredentialError:
        text = f"{error.message}: {error.hint}" if error.hint else error.message
        return cls(profile=profile, error_msg=text, code=error.code, hint=error.hint)


class CreddFetcher:
    """Asks the daemon for one profile's credentials and returns them as botocore metadata
    (``access_key``, ``secret_key``, ``token``, ``expiry_time``, ``account_id``).

    Thread-safe: every call is one connection (:class:`credd.client.Client`). A ``not_ready``
    answer is asked again for up to :data:`NOT_READY_WAIT` seconds; every other failure is
    raised at once as :class:`CreddCredentialError`.
    """

    def __init__(self, profile: str, client: Client, clock: Clock) -> None:
        self.profile = profile
        self.client = client
        self.clock = clock

    def __repr__(self) -> str:
        return f"CreddFetcher({self.profile!r}, socket={self.client.socket!r})"

    def __call__(self) -> dict[str, Any]:
        deadline = self.clock.now() + timedelta(seconds=NOT_READY_WAIT)
        while True:
            try:
                data = self.client.credentials(self.profile)
                return self._metadata(data)
            except NotReady as exc:
                if self.clock.now() >= deadline:
                    raise CreddCredentialError.from_credd(self.profile, exc) from exc
                log.debug("credd: %s is being fetched; asking again", self.profile)
                self.clock.sleep(NOT_READY_PAUSE)
            except CreddError as exc:
                raise CreddCredentialError.from_credd(self.profile, exc) from exc

    async def fetch_async(self) -> dict[str, Any]:
        """:meth:`__call__` in a worker thread, so the event loop never blocks on the socket."""
        return await asyncio.to_thread(self)

    def _metadata(self, data: dict[str, Any]) -> dict[str, Any]:
        key, secret = data.get("AccessKeyId"), data.get("SecretAccessKey")
        if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
            raise DaemonUnavailable(
                "the credd daemon sent credentials without a key", hint="see the daemon's log"
            )
        now = self.clock.now()
        text = data.get("Expiration")
        try:
            expiry = parse_iso(text) if isinstance(text, str) else now + NO_EXPIRY_RECHECK
        except ValueError:
            raise DaemonUnavailable(
                "the credd daemon sent an unreadable Expiration", hint="see the daemon's log"
            ) from None
        if expiry <= now:
            raise DaemonUnavailable(
                f"the credd daemon served expired credentials for {self.profile}",
                hint=f"check it: credd status {self.profile}",
            )
        log.debug(
            "credd: credentials for %s (key ...%s), %d s left",
            self.profile,
            key[-4:],
            (expiry - now).total_seconds(),
        )
        return {
            "access_key": key,
            "secret_key": secret,
            "token": data.get("SessionToken"),
            "expiry_time": isoformat_z(expiry),
            "account_id": data.get("AccountId"),
        }


def _credentials_kwargs(
    metadata: dict[str, Any],
    clock: Clock | None,
    advisory_timeout: int | None,
    mandatory_timeout: int | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "access_key": metadata["access_key"],
        "secret_key": metadata["secret_key"],
        "token": metadata["token"],
        "expiry_time": parse_iso(metadata["expiry_time"]),
        "method": METHOD,
        "account_id": metadata["account_id"],
    }
    if clock is not None:
        kwargs["time_fetcher"] = clock.now
    if advisory_timeout is not None:
        kwargs["advisory_timeout"] = advisory_timeout
    if mandatory_timeout is not None:
        kwargs["mandatory_timeout"] = mandatory_timeout
    return kwargs


class CreddProvider(CredentialProvider):  # type: ignore[misc]
    """The only provider of a session made here: ``RefreshableCredentials`` fed by credd."""

    METHOD = METHOD
    CANONICAL_NAME = "custom-credd"

    def __init__(
        self,
        fetch: CreddFetcher,
        *,
        clock: Clock | None = None,
        advisory_timeout: int | None = None,
        mandatory_timeout: int | None = None,
    ) -> None:
        super().__init__()
        self.fetch = fetch
        self.clock = clock
        self.advisory_timeout = advisory_timeout
        self.mandatory_timeout = mandatory_timeout

    def kwargs(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return _credentials_kwargs(
            metadata, self.clock, self.advisory_timeout, self.mandatory_timeout
        )

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials(refresh_using=self.fetch, **self.kwargs(self.fetch()))


class AioCreddProvider(CreddProvider):
    """The same for aiobotocore: the socket call runs in a thread, refresh is awaited."""

    async def load(self) -> Any:
        from aiobotocore.credentials import AioRefreshableCredentials

        metadata = await self.fetch.fetch_async()
        return AioRefreshableCredentials(
            refresh_using=self.fetch.fetch_async, **self.kwargs(metadata)
        )


def _use_profile(session: Any, profile: str, region_name: str | None) -> None:
    """Point a fresh botocore session at ``profile``'s settings when the AWS config has it."""
    if profile in session.available_profiles:
        session.set_config_variable("profile", profile)
    else:
        log.debug("credd: no profile %s in the AWS config; using botocore's defaults", profile)
    if region_name is not None:
        session.set_config_variable("region", region_name)


def _fetcher(profile: str, socket: str | Path | None, clock: Clock | None) -> CreddFetcher:
    if not isinstance(profile, str) or not profile:
        raise ValueError("which profile? give its name, as `credd status` lists it")
    client = Client(os.fspath(socket) if socket is not None else None)
    return CreddFetcher(profile, client, clock or SystemClock())


def botocore_session(
    profile: str,
    *,
    socket: str | Path | None = None,
    region_name: str | None = None,
    advisory_timeout: int | None = None,
    mandatory_timeout: int | None = None,
    clock: Clock | None = None,
) -> Any:
    """A ``botocore.session.Session`` for ``profile`` with credentials from credd.

    See :func:`boto3_session` for the arguments.
    """
    import botocore.session

    fetch = _fetcher(profile, socket, clock)
    session = botocore.session.Session()
    _use_profile(session, profile, region_name)
    provider = CreddProvider(
        fetch,
        clock=clock,
        advisory_timeout=advisory_timeout,
        mandatory_timeout=mandatory_timeout,
    )
    session.register_component("credential_provider", CredentialResolver([provider]))
    return session


def boto3_session(
    profile: str,
    *,
    socket: str | Path | None = None,
    region_name: str | None = None,
    advisory_timeout: int | None = None,
    mandatory_timeout: int | None = None,
    clock: Clock | None = None,
) -> boto3.Session:
    """A ``boto3.Session`` whose credentials for ``profile`` come from the credd daemon and
    refresh themselves for as long as the program runs.

    :param profile: the credd-managed profile (as ``credd status`` lists it). Its section in
        the AWS config, when there is one, gives the session's region and endpoints.
    :param socket: the daemon's socket (default: ``CREDD_SOCKET``, else the standard path).
    :param region_name: overrides the profile's region.
    :param advisory_timeout: seconds before expiry from which botocore tries a refresh
        (default: botocore's, 15 min). Only worth changing for very short sessions.
    :param mandatory_timeout: seconds before expiry from which botocore blocks on a refresh
        (default: botocore's, 10 min).
    :param clock: where time comes from (tests); default the system clock.

    The daemon is first asked when the first client is made (``session.client("s3")``), then
    by botocore whenever the credentials near expiry. Failures raise
    :class:`CreddCredentialError` with what to run.
    """
    import boto3

    core = botocore_session(
        profile,
        socket=socket,
        region_name=region_name,
        advisory_timeout=advisory_timeout,
        mandatory_timeout=mandatory_timeout,
        clock=clock,
    )
    return boto3.Session(botocore_session=core)


def aiobotocore_session(
    profile: str,
    *,
    socket: str | Path | None = None,
    region_name: str | None = None,
    advisory_timeout: int | None = None,
    mandatory_timeout: int | None = None,
    clock: Clock | None = None,
) -> AioSession:
    """An ``aiobotocore.session.AioSession`` with refreshing credentials from credd, ready for
    ``s3fs.S3FileSystem(session=...)``. Arguments as for :func:`boto3_session`.

    The credentials are aiobotocore's ``AioRefreshableCredentials``: refreshes are awaited,
    and the socket call runs in a worker thread (``asyncio.to_thread``), so the event loop
    never blocks on it.
    """
    from aiobotocore.credentials import AioCredentialResolver
    from aiobotocore.session import AioSession

    fetch = _fetcher(profile, socket, clock)
    session = AioSession()
    _use_profile(session, profile, region_name)
    provider = AioCreddProvider(
        fetch,
        clock=clock,
        advisory_timeout=advisory_timeout,
        mandatory_timeout=mandatory_timeout,
    )
    session.register_component("credential_provider", AioCredentialResolver([provider]))
    return session


def seconds_left(credentials: Any, clock: Clock | None = None) -> float | None:
    """Seconds before the credentials botocore holds expire (``None`` if they do not).

    Reads ``_expiry_time`` of ``RefreshableCredentials``: botocore has no public accessor.
    """
    expiry: datetime | None = getattr(credentials, "_expiry_time", None)
    if expiry is None:
        return None
    now = (clock or SystemClock()).now()
    return (expiry - now).total_seconds()
