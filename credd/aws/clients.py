"""The one factory of botocore clients for credd's own calls (STS, IAM, SSO-OIDC, SSO portal).

A client is made exactly as botocore would make it for the profile: through a botocore session
bound to that profile, so ``region``, ``sts_regional_endpoints``, ``[services NAME]`` sections,
``endpoint_url``, ``AWS_ENDPOINT_URL_*``, ``ignore_configured_endpoint_urls``,
``use_fips_endpoint`` and ``use_dualstack_endpoint`` apply as they do for the user's programs.

What makes it cheap (issue 9): the heavy parts are shared by the whole daemon. One botocore
loader (the data files: service models, endpoint rulesets, ~8 MB once) and one event emitter with
botocore's built-in handlers serve every session; the per-profile session is a light view that
reads the config parsed once per load (:meth:`ClientFactory.load`) and lives only while a client
is made. Clients themselves are cached by what botocore's choice depends on: the profile's
client-shaping settings (not its name), the credentials and the service, so a thousand role
profiles behind one MFA session share one STS client. Nothing is created under a global lock;
two threads wanting the very same client wait for the first one only.

Every API call goes through a :class:`Limiter`: at most ``CREDD_MAX_INFLIGHT`` (default 16)
calls are in flight at once, daemon-wide, so a thousand refreshes due together reach AWS as a
steady stream instead of a burst that trips STS throttling.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from credd import metrics
from credd.models import Credentials

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_INFLIGHT = 16
MAX_INFLIGHT = 256
#: Clients kept; each holds a few hundred KB at most, and keys rotate with credentials.
CACHE_SIZE = 64

#: Profile keys that only say where credentials come from (credd passes credentials explicitly,
#: or none for unsigned clients) or are credd's own: they never change the client botocore makes,
#: so profiles differing only in them share clients.
IDENTITY_KEYS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_account_id",
        "role_arn",
        "source_profile",
        "credential_source",
        "credential_process",
        "external_id",
        "role_session_name",
        "duration_seconds",
        "mfa_serial",
        "mfa_process",
        "web_identity_token_file",
        "sso_account_id",
        "sso_role_name",
        "sso_session",
        "sso_start_url",
        "sso_region",
        "sso_registration_scopes",
        "login_session",
    }
)


def max_inflight(environ: Mapping[str, str] | None = None) -> int:
    """``CREDD_MAX_INFLIGHT`` (1 to 256), else 16: enough to make 1,000 profiles fresh in a few
    seconds, few enough to stay well under STS's request rate."""
    env = os.environ if environ is None else environ
    text = env.get("CREDD_MAX_INFLIGHT", "").strip()
    if text.isdigit() and 0 < int(text) <= MAX_INFLIGHT:
        return int(text)
    if text:
        log.warning("CREDD_MAX_INFLIGHT=%r is not 1..%d; using %d", text, MAX_INFLIGHT, 16)
    return DEFAULT_INFLIGHT


class Limiter:
    """A bound on the AWS calls in flight at once, with the peak seen (for tests and bench)."""

    def __init__(self, size: int = DEFAULT_INFLIGHT) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.inflight = 0
        self.peak = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            with self._lock:
                self.inflight += 1
                self.peak = max(self.peak, self.inflight)
            try:
                yield
            finally:
                with self._lock:
                    self.inflight -= 1


class BoundedClient:
    """A botocore client whose API calls each hold a :class:`Limiter` slot. Everything else
    (``meta``, ``exceptions``...) is the client's own."""

    def __init__(self, client: Any, limiter: Limiter) -> None:
        self._client = client
        self._limiter = limiter
        self._operations = frozenset(client.meta.method_to_api_mapping)

    @property
    def unbounded(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self._operations:
            return attr
        limiter = self._limiter

        def call(*args: Any, **kwargs: Any) -> Any:
            with limiter.slot():
                return attr(*args, **kwargs)

        return call


def _profile_session_class() -> type[Any]:
    import botocore.session

    class ProfileSession(botocore.session.Session):  # type: ignore[misc]
        """A botocore session for one profile that reads an already parsed config."""

        shared_config: Mapping[str, Any] = {}

        @property
        def full_config(self) -> Mapping[str, Any]:
            return self.shared_config

    return ProfileSession


class ClientFactory:
    """Makes (and caches) botocore clients for a profile's settings; see the module text."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        parameter_validation: bool = True,
        limiter: Limiter | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        """``parameter_validation=False`` only under ``CREDD_MIN_SESSION_SECONDS``: botocore's
        model holds AWS's 900 s floor on ``DurationSeconds``; the stand-in validates instead."""
        self._validate = parameter_validation
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.limiter = limiter or Limiter(max_inflight())
        self._cache_size = cache_size
        self._full: Mapping[str, Any] | None = None
        self._clients: OrderedDict[tuple[Any, ...], BoundedClient] = OrderedDict()
        self._making: dict[tuple[Any, ...], threading.Lock] = {}
        self._warm: dict[str, threading.Lock] = {}
        self._warmed: set[str] = set()  # services whose model botocore has loaded
        self._lock = threading.Lock()  # guards the dicts above, never held while making a client
        self._base: Any = None
        self._session_class: type[Any] | None = None
        #: how many clients were made (not served from the cache): for tests and the bench
        self.made = 0
        self._generation = 0  # bumped by load/forget: a client made before is not kept

    # -- configuration ---------------------------------------------------------------------

    def load(self, full_config: Mapping[str, Any]) -> None:
        """Adopt the AWS config parsed by :func:`credd.aws.config.load` and drop every cached
        client: after a reload each call is made with the new settings."""
        with self._lock:
            self._full = full_config
            self._clients.clear()
            self._making.clear()
            self._generation += 1

    def forget(self) -> None:
        """Drop cached clients and the parsed config (read again through botocore on next use,
        unless :meth:`load` hands a new one). botocore's data files stay loaded."""
        with self._lock:
            self._full = None
            self._clients.clear()
            self._making.clear()
            self._generation += 1

    def _config_now(self) -> Mapping[str, Any]:
        with self._lock:
            full = self._full
        if full is None:
            from credd.aws.config import read_full_config

            full = read_full_config()
            with self._lock:
                self._full = self._full or full
                full = self._full
        return full

    def _base_session(self) -> Any:
        with self._lock:
            if self._base is None:
                import botocore.hooks
                import botocore.session

                emitter = botocore.hooks.HierarchicalEmitter()
                self._base = botocore.session.Session(event_hooks=emitter)
                self._base.emitter = emitter
                self._session_class = _profile_session_class()
            return self._base

    def session(self, profile: str | None) -> Any:
        """A light botocore session bound to ``profile`` (``None``: botocore's default profile)
        that shares the daemon's loader, handlers and parsed config."""
        full = self._config_now()
        base = self._base_session()
        assert self._session_class is not None
        session = self._session_class(
            event_hooks=base.emitter, include_builtin_handlers=False, profile=profile
        )
        session.shared_config = full
        session.register_component("data_loader", base.get_component("data_loader"))
        return session

    def settings_key(self, profile: str | None) -> tuple[Any, ...]:
        """What botocore's choice of region and endpoint for ``profile`` depends on: its
        settings minus the credential keys, and the ``[services]`` section it names. Profiles
        with equal keys get identical clients from botocore, so they share one."""
        full = self._config_now()
        profiles: Mapping[str, Mapping[str, Any]] = full.get("profiles", {}) or {}
        raw = profiles.get(profile or "default")
        if raw is None:
            return ("missing", profile)
        own = tuple(sorted((k, repr(v)) for k, v in raw.items() if k not in IDENTITY_KEYS))
        services: Mapping[str, Any] = full.get("services", {}) or {}
        section = services.get(str(raw.get("services", "")).strip(), {})
        return ("profile" if profile else "default", own, repr(sorted(section.items())))

    # -- clients ---------------------------------------------------------------------------

    def _config(self, **extra: Any) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            # credd does its own backoff with jitter; one quick retry covers a dropped connection.
            retries={"mode": "standard", "total_max_attempts": 2},
            user_agent_extra="credd",
            parameter_validation=self._validate,
            # a client is shared by every profile with the same settings: as many connections
            # as calls may be in flight, so none is opened and thrown away per call
            max_pool_connections=max(10, self.limiter.size),
            **extra,
        )

    def client(
        self,
        service: str,
        profile: str,
        credentials: Credentials,
        *,
        region: str | None = None,
        **config: Any,
    ) -> Any:
        """A client signed with ``credentials``, in the profile's region (or ``region``) and
        endpoint. ``config``: extra botocore ``Config`` options (e.g. ``signature_version``)."""
        digest = hashlib.sha256(
            "\0".join(
                (
                    credentials.access_key_id,
                    credentials.secret_access_key,
                    credentials.session_token or "",
                )
            ).encode("utf-8")
        ).hexdigest()
        extra = repr(sorted(config.items()))
        key = (service, "signed", self.settings_key(profile), digest, region, extra)

        def make() -> Any:
            session = self.session(profile)
            return session.create_client(
                service,
                region_name=region or session.get_config_variable("region") or DEFAULT_REGION,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                config=self._config(**config),
            )

        return self._cached(key, service, make)

    def unsigned_client(self, service: str, profile: str | None, region: str) -> Any:
        """A client for the unsigned IAM Identity Center APIs (``sso``, ``sso-oidc``) in
        ``region`` (the SSO region, not the profile's), honouring the profile's endpoints.
        ``profile=None`` (a bare ``--sso-session``) uses the default profile's, as the AWS CLI
        does."""
        from botocore import UNSIGNED

        key = (service, "unsigned", self.settings_key(profile), region)

        def make() -> Any:
            return self.session(profile).create_client(
                service, region_name=region, config=self._config(signature_version=UNSIGNED)
            )

        return self._cached(key, service, make)

    def _cached(self, key: tuple[Any, ...], service: str, make: Any) -> Any:
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found
            making = self._making.setdefault(key, threading.Lock())
            generation = self._generation
            warm = self._warm.setdefault(service, threading.Lock())
        with making:  # only threads wanting this very client wait here
            with self._lock:
                found = self._clients.get(key)
            if found is not None:
                return found
            with self._lock:
                warmed = service in self._warmed
            if warmed:
                client = BoundedClient(metrics.instrument(make()), self.limiter)
            else:
                with warm:  # the first client of a service loads its model once, not N times
                    client = BoundedClient(metrics.instrument(make()), self.limiter)
                with self._lock:
                    self._warmed.add(service)
            with self._lock:
                self.made += 1
                if generation != self._generation:
                    return client  # the config was reloaded meanwhile: use it once, keep none
                self._clients[key] = client
                self._making.pop(key, None)
                while len(self._clients) > self._cache_size:
                    self._clients.popitem(last=False)
            return client
