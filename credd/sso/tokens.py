"""Keeping an SSO access token fresh with the refresh-token grant.

:func:`refresh_due` / :func:`refresh_at` are pure: when to refresh, from the token and an
injected clock's time, with :class:`credd.engine.scheduler.RefreshPolicy`'s lead (for a 1 h token:
20 min before expiry, ahead of botocore's own 15 min window, so botocore rarely races credd).

:class:`TokenStore` does the refresh: under credd's lock on the cache file it re-reads the file
(someone may have refreshed meanwhile), calls ``CreateToken(grantType="refresh_token")``, writes
the rotated refresh token back at once, and never replaces a token that expires later. When the
refresh token was spent by a concurrent botocore refresh, the token botocore wrote is used.
Legacy profiles (no ``sso_session``) are never refreshed, as in botocore.

An access token the portal refused (:meth:`TokenStore.reject`: the session was revoked, an
administrator ended it, ``aws sso logout``) is never handed out again, though it stays in the
shared cache (the file is the AWS CLI's too): the refresh-token grant is tried instead, and when
that is refused too a login is required. A new login in the cache is a different token: used at
once.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import deque
from dataclasses import replace
from datetime import datetime, timedelta

from credd.aws.clients import ClientFactory
from credd.clock import Clock, SystemClock, isoformat_z
from credd.engine.scheduler import RefreshPolicy
from credd.errors import LoginRequired
from credd.sso.cache import SsoToken, TokenCache
from credd.sso.oidc import call
from credd.sso.settings import SsoTarget

log = logging.getLogger(__name__)

#: Assumed lifetime of a token whose issue time is unknown (IAM Identity Center's default).
DEFAULT_LIFETIME = timedelta(hours=1)
REFRESH_GRANT = "refresh_token"
#: Refused access tokens remembered per login (a login replaces the one in the cache).
REJECTED_KEPT = 8


def _digest(access_token: str) -> str:
    """What is remembered of a refused token: its SHA-256, never the token."""
    return hashlib.sha256(access_token.encode()).hexdigest()


def refresh_lead(lifetime: timedelta | None, policy: RefreshPolicy | None = None) -> timedelta:
    """How long before expiry to refresh a token that lives ``lifetime``."""
    return (policy or RefreshPolicy()).lead(lifetime or DEFAULT_LIFETIME, unattended=True)


def refresh_at(
    token: SsoToken,
    *,
    lifetime: timedelta | None = None,
    policy: RefreshPolicy | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to refresh ``token`` (``None``: it cannot be refreshed; a login is needed at
    ``token.expires_at``). With ``rng``, jittered earlier as the policy says."""
    if not token.has_refresh:
        return None
    pol = policy or RefreshPolicy()
    life = lifetime or DEFAULT_LIFETIME
    if rng is None:
        return token.expires_at - refresh_lead(life, pol)
    return pol.refresh_at(token.expires_at - life, token.expires_at, unattended=True, rng=rng)


def refresh_due(
    token: SsoToken,
    now: datetime,
    *,
    legacy: bool = False,
    lifetime: timedelta | None = None,
    policy: RefreshPolicy | None = None,
) -> bool:
    """Whether ``token`` should be refreshed at ``now`` (never for legacy profiles, nor for a
    token without a refresh token or registration)."""
    if legacy:
        return False
    when = refresh_at(token, lifetime=lifetime, policy=policy)
    return when is not None and now >= when


def servable(token: SsoToken, now: datetime, policy: RefreshPolicy | None = None) -> bool:
    """Whether the access token may still be used at ``now`` (not in its last minute)."""
    return (policy or RefreshPolicy()).servable(token.expires_at, now)


class TokenStore:
    """The daemon's view of SSO tokens: read the shared cache, refresh, write back."""

    def __init__(
        self,
        cache: TokenCache | None = None,
        clients: ClientFactory | None = None,
        *,
        clock: Clock | None = None,
        policy: RefreshPolicy | None = None,
    ) -> None:
        self.clock: Clock = clock or (cache.clock if cache is not None else SystemClock())
        self.cache = cache or TokenCache(clock=self.clock)
        self.clients = clients or ClientFactory()
        self.policy = policy or RefreshPolicy()
        self._lifetimes: dict[str, timedelta] = {}
        self._latest: dict[str, SsoToken] = {}  # tokens obtained but maybe not yet written
        self._rejected: dict[str, deque[str]] = {}  # digests of access tokens the portal refused
        self._lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------

    def current(self, target: SsoTarget) -> SsoToken | None:
        """The best token known for ``target``: the cache's, or a newer one credd could not
        write yet."""
        token = self.cache.read(target)
        with self._lock:
            mine = self._latest.get(target.cache_key)
        if mine is not None and (token is None or mine.expires_at > token.expires_at):
            return mine
        return token

    def reject(self, target: SsoTarget, access_token: str) -> None:
        """IAM Identity Center refused ``access_token`` (the portal answered Unauthorized): it is
        never handed out again; the next :meth:`access_token` refreshes or asks for a login."""
        digest = _digest(access_token)
        with self._lock:
            kept = self._rejected.setdefault(target.cache_key, deque(maxlen=REJECTED_KEPT))
            if digest not in kept:
                kept.append(digest)
            mine = self._latest.get(target.cache_key)
            if mine is not None and mine.access_token == access_token:
                del self._latest[target.cache_key]
        log.info("the SSO access token for %s was refused; it is not used again", target.label)

    def rejected(self, target: SsoTarget, access_token: str) -> bool:
        """Whether IAM Identity Center refused ``access_token`` (see :meth:`reject`)."""
        with self._lock:
            kept = self._rejected.get(target.cache_key)
            return kept is not None and _digest(access_token) in kept

    def usable(self, target: SsoTarget, token: SsoToken, now: datetime) -> bool:
        """Servable at ``now`` and not refused."""
        return servable(token, now, self.policy) and not self.rejected(target, token.access_token)

    def lifetime(self, target: SsoTarget) -> timedelta | None:
        with self._lock:
            return self._lifetimes.get(target.cache_key)

    def refresh_due(self, target: SsoTarget, token: SsoToken) -> bool:
        return refresh_due(
            token,
            self.clock.now(),
            legacy=target.legacy,
            lifetime=self.lifetime(target),
            policy=self.policy,
        )

    def next_refresh(self, target: SsoTarget, token: SsoToken) -> datetime | None:
        """When the daemon should next call :meth:`refresh` (``None``: never, a login will be
        needed at ``token.expires_at``)."""
        if target.legacy:
            return None
        return refresh_at(token, lifetime=self.lifetime(target), policy=self.policy)

    def _login_required(
        self, target: SsoTarget, profile: str | None, why: str, token: SsoToken | None
    ) -> LoginRequired:
        return LoginRequired(
            f"SSO login for {target.label} needed: {why}",
            hint=f"run: {target.login_command(profile)}",
            expires_at=token.expires_at if token is not None else None,
        )

    def access_token(self, target: SsoTarget, *, profile: str | None = None) -> SsoToken:
        """A token fit to use now, refreshed first when due. A failed refresh is not fatal
        while the current token is still servable (the daemon retries on its schedule)."""
        token = self.current(target)
        now = self.clock.now()
        if (
            token is not None
            and not self.refresh_due(target, token)
            and self.usable(target, token, now)
        ):
            return token
        if token is not None and not target.legacy and token.has_refresh:
            try:
                return self.refresh(
                    target, profile=profile, force=not self.usable(target, token, now)
                )
            except Exception as exc:
                if not self.usable(target, token, self.clock.now()):
                    raise
                log.warning("SSO refresh for %s failed, token still valid: %s", target.label, exc)
                return token
        if token is None:
            raise self._login_required(target, profile, "no token in the SSO cache", None)
        if self.rejected(target, token.access_token):
            why = "IAM Identity Center refused the access token (the session ended or was revoked)"
            raise self._login_required(target, profile, why, None)
        if not servable(token, now, self.policy):
            why = f"the access token expired at {isoformat_z(token.expires_at)}"
            if target.legacy:
                why += " (profiles without sso_session cannot refresh; consider sso_session)"
            raise self._login_required(target, profile, why, token)
        return token

    # -- refreshing -------------------------------------------------------------------------

    def refresh(
        self, target: SsoTarget, *, profile: str | None = None, force: bool = False
    ) -> SsoToken:
        """Refresh ``target``'s token if it is due (always with ``force``) and return the
        token now in the cache. Raises ``LoginRequired`` (field ``expires_at``: until when the
        current token still works), ``AwsUnreachable``/``AwsThrottled`` (transient) or
        ``SsoCacheError``."""
        with self.cache.locked(target):
            token = self.current(target)
            if token is None:
                raise self._login_required(target, profile, "no token in the SSO cache", None)
            if target.legacy:
                if not self.usable(target, token, self.clock.now()):
                    raise self._login_required(
                        target, profile, "the token ended; a legacy profile cannot refresh", token
                    )
                return token
            fine = self.usable(target, token, self.clock.now())
            if not force and fine and not self.refresh_due(target, token):
                return token  # refreshed by someone else meanwhile
            return self._refresh_locked(target, token, profile)

    def _refresh_locked(self, target: SsoTarget, token: SsoToken, profile: str | None) -> SsoToken:
        for attempt in (1, 2):
            now = self.clock.now()
            if not token.has_refresh:
                raise self._login_required(
                    target, profile, "the cached token has no refresh token", token
                )
            if not token.registration_valid(now):
                raise self._login_required(
                    target, profile, "the client registration has expired", token
                )
            client = self.clients.unsigned_client("sso-oidc", profile, target.region)
            try:
                response = call(
                    client,
                    "create_token",
                    target=target,
                    action="CreateToken (refresh)",
                    profile=profile,
                    grantType=REFRESH_GRANT,
                    clientId=token.client_id,
                    clientSecret=token.client_secret,
                    refreshToken=token.refresh_token,
                )
            except LoginRequired as exc:
                again = self.cache.read(target)
                if (
                    attempt == 1
                    and again is not None
                    and again.refresh_token != token.refresh_token
                ):
                    log.info("SSO token for %s was refreshed by another program", target.label)
                    usable = self.usable(target, again, self.clock.now())
                    if usable and not self.refresh_due(target, again):
                        return again
                    token = again
                    continue
                raise LoginRequired(
                    exc.message, hint=exc.hint, expires_at=token.expires_at
                ) from None
            return self._store(target, token, response)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _store(self, target: SsoTarget, old: SsoToken, response: dict[str, object]) -> SsoToken:
        now = self.clock.now()
        expires_in = response.get("expiresIn")
        seconds = int(expires_in) if isinstance(expires_in, (int, float)) else 3600
        rotated = response.get("refreshToken")
        new = replace(
            old,
            access_token=str(response["accessToken"]),
            expires_at=now + timedelta(seconds=seconds),
            refresh_token=rotated if isinstance(rotated, str) and rotated else old.refresh_token,
            start_url=target.start_url,
            region=target.region,
        )
        with self._lock:
            self._latest[target.cache_key] = new
            self._lifetimes[target.cache_key] = timedelta(seconds=seconds)
        written = self.cache.write(target, new, keep_newer=True)
        with self._lock:
            if self._latest.get(target.cache_key) is new:
                del self._latest[target.cache_key]
        log.info(
            "refreshed the SSO token for %s (expires %s%s)",
            target.label,
            isoformat_z(written.expires_at),
            ", refresh token rotated" if rotated else "",
        )
        return written
