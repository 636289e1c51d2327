"""What a login can reach: the SSO portal's ListAccounts and ListAccountRoles, every page.

Clients come from the one factory (:class:`credd.aws.ClientFactory`, unsigned, in the SSO
region, with the profile's endpoints), so each call holds a slot of its :class:`Limiter`: the
accounts' role listings run side by side but never more at once than the bound on calls in
flight. Errors go through the one translator (:func:`credd.sso.oidc.translate`): a refused
token is :class:`~credd.errors.LoginRequired`, naming the command to log in again.

Throttling (``TooManyRequestsException``) and unreachable endpoints are retried with
exponential backoff and full jitter, waited on the injected clock outside any limiter slot;
botocore's own single quick retry sits inside each attempt. Pages are followed through
``nextToken``; a token handed back twice is an error, not an endless loop.
"""

from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from credd.aws.clients import ClientFactory
from credd.clock import Clock, SystemClock
from credd.errors import AwsError
from credd.sso.cache import SsoToken
from credd.sso.naming import Assignment
from credd.sso.oidc import translate
from credd.sso.settings import SsoTarget

log = logging.getLogger(__name__)

#: Page size asked for (the portal's own cap is 100 for ListAccountRoles).
PAGE_SIZE = 100
MAX_PAGES = 10_000
#: Role listings run side by side, at most this many (and never beyond the factory's limiter).
MAX_WORKERS = 8


@dataclass(frozen=True)
class Backoff:
    """Retries of throttled or unreachable calls: ``base * 2**n`` capped, with full jitter."""

    attempts: int = 8
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


class Lister:
    """Lists a login's accounts and roles; see the module text. ``profile``: whose endpoint
    settings apply (``None``: the default profile's)."""

    def __init__(
        self,
        target: SsoTarget,
        token: SsoToken,
        factory: ClientFactory,
        *,
        profile: str | None = None,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.target = target
        self.token = token
        self.factory = factory
        self.profile = profile
        self.backoff = backoff or Backoff()
        self.page_size = page_size
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.retries = 0  # attempts that were retried (for tests and the output)

    @property
    def login_as(self) -> str | None:
        """The profile ``credd login`` is told to name: only a legacy login needs one (an
        sso-session is logged in to by its name)."""
        return self.profile if self.target.legacy else None

    def _client(self) -> Any:
        return self.factory.unsigned_client("sso", self.profile, self.target.region)

    def _call(self, operation: str, action: str, **params: Any) -> dict[str, Any]:
        client = self._client()
        for attempt in range(self.backoff.attempts):
            try:
                result: dict[str, Any] = getattr(client, operation)(
                    accessToken=self.token.access_token, **params
                )
                return result
            except Exception as exc:
                error = translate(exc, target=self.target, action=action, profile=self.login_as)
                if not error.transient or attempt + 1 >= self.backoff.attempts:
                    raise error from None
                wait = self.backoff.delay(attempt, self._rng)
                log.info("%s: %s; retrying in %.1fs", action, error.message, wait)
                with self._lock:
                    self.retries += 1
                self._clock.sleep(wait)  # no limiter slot is held while waiting
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, operation: str, action: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        following: str | None = None
        for _ in range(MAX_PAGES):
            extra = {"nextToken": following} if following else {}
            page = self._call(operation, action, maxResults=self.page_size, **params, **extra)
            items.extend(x for x in page.get(key) or [] if isinstance(x, dict))
            following = page.get("nextToken") or None
            if following is None:
                return items
            if following in seen:
                break
            seen.add(following)
        raise AwsError(
            f"{action} for {self.target.label}: the portal kept handing out pages",
            hint="try again later; if it persists, report it",
        )

    def accounts(self) -> list[tuple[str, str]]:
        """(account id, account name) of every account the login can reach."""
        raw = self._pages("list_accounts", "ListAccounts", "accountList")
        out = {
            str(a["accountId"]): str(a.get("accountName") or "") for a in raw if a.get("accountId")
        }
        return sorted(out.items())

    def roles(self, account_id: str) -> list[str]:
        raw = self._pages(
            "list_account_roles", "ListAccountRoles", "roleList", accountId=account_id
        )
        return sorted({str(r["roleName"]) for r in raw if r.get("roleName")})

    def assignments(self) -> list[Assignment]:
        """Every (account, role) pair, sorted; the role listings run side by side."""
        accounts = self.accounts()
        if not accounts:
            return []
        workers = max(1, min(MAX_WORKERS, self.factory.limiter.size, len(accounts)))

        def listed(a: tuple[str, str]) -> list[Assignment]:
            return [Assignment(a[0], role, a[1]) for role in self.roles(a[0])]

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sso-roles") as pool:
            results = list(pool.map(listed, accounts))
        return sorted(pair for chunk in results for pair in chunk)
