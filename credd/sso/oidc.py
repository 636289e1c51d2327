"""SSO-OIDC calls (RegisterClient, StartDeviceAuthorization, CreateToken), made as botocore
makes them, and their errors turned into credd errors.

Clients are unsigned (``botocore.UNSIGNED``, as botocore's ``SSOTokenProvider`` and the AWS CLI
create them) and made from a botocore session bound to the profile, so ``[services NAME]``
sections, ``endpoint_url`` and ``AWS_ENDPOINT_URL_SSO_OIDC`` apply exactly as for botocore.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from credd import metrics
from credd.errors import (
    AwsError,
    AwsThrottled,
    AwsUnreachable,
    CreddError,
    LoginRequired,
)
from credd.sso.settings import SsoTarget

log = logging.getLogger(__name__)

#: CreateToken answers that mean the refresh token, or the registration, can no longer be used.
LOGIN_CODES = frozenset(
    {
        "InvalidGrantException",
        "ExpiredTokenException",
        "InvalidClientException",
        "UnauthorizedClientException",
        "AccessDeniedException",
        "InvalidScopeException",
    }
)
_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "SlowDownException", "Throttling"}
)

SessionFactory = Callable[[str | None], Any]


def _default_session(profile: str | None) -> Any:
    import botocore.session

    return botocore.session.Session(profile=profile)


class OidcClients:
    """Makes unsigned ``sso-oidc`` (and ``sso`` portal) clients for a profile's settings."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        self._session_factory = session_factory or _default_session
        self._sessions: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def client(self, service: str, target: SsoTarget, profile: str | None = None) -> Any:
        """An unsigned client for ``service`` in ``target``'s SSO region.

        ``profile`` picks whose ``[services]``/``endpoint_url`` settings apply; ``None`` (a
        bare ``--sso-session``) uses the default profile's, as the AWS CLI does.
        """
        from botocore import UNSIGNED
        from botocore.config import Config

        config = Config(
            region_name=target.region,
            signature_version=UNSIGNED,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
            user_agent_extra="credd",
        )
        with self._lock:  # botocore sessions are not safe for concurrent client creation
            session = self._sessions.get(profile)
            if session is None:
                session = self._session_factory(profile)
                self._sessions[profile] = session
            client = session.create_client(service, config=config)
        return metrics.instrument(client)

    def forget(self) -> None:
        """Drop cached sessions (after the AWS config changed)."""
        with self._lock:
            self._sessions.clear()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else ``None``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def translate(
    exc: BaseException, *, target: SsoTarget, action: str, profile: str | None = None
) -> CreddError:
    """Map a botocore exception from an SSO-OIDC call to a credd error. Never echoes a secret
    (OIDC error messages can quote what was sent, so only the code is used)."""
    import botocore.exceptions as bx

    if isinstance(exc, CreddError):
        return exc
    login = target.login_command(profile)
    if isinstance(exc, bx.ClientError):
        code = error_code(exc) or "Unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in LOGIN_CODES:
            return LoginRequired(
                f"SSO login for {target.label} has ended ({action}: {code})",
                hint=f"run: {login}",
            )
        if code in _THROTTLE_CODES or status == 429:
            return AwsThrottled(
                f"{action} for {target.label} was throttled ({code})",
                hint="credd retries with backoff",
            )
        if status >= 500 or code == "InternalServerException":
            return AwsUnreachable(
                f"{action} for {target.label} failed on the AWS side ({code}, HTTP {status})",
                hint="credd retries with backoff",
            )
        return AwsError(
            f"{action} for {target.label} failed: {code}",
            hint=f"check sso_start_url and sso_region, then run: {login}",
        )
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionError, bx.HTTPClientError)):
        return AwsUnreachable(
            f"{action} for {target.label}: IAM Identity Center could not be reached "
            f"({type(exc).__name__})",
            hint="check the network, sso_region or the endpoint; credd retries with backoff",
        )
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{action} for {target.label} failed: {type(exc).__name__}")
    return AwsError(f"{action} for {target.label} failed unexpectedly ({type(exc).__name__})")


def call(
    client: Any,
    operation: str,
    *,
    target: SsoTarget,
    action: str,
    profile: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    """``client.<operation>(**params)``, with errors translated."""
    try:
        result: dict[str, Any] = getattr(client, operation)(**params)
    except Exception as exc:
        raise translate(exc, target=target, action=action, profile=profile) from None
    return result
