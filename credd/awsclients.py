"""botocore clients for credd's own calls (STS, IAM), made the way the profile says.

A client is created from a botocore session bound to the profile, so ``region``,
``sts_regional_endpoints``, ``[services NAME]`` endpoint sections and ``AWS_ENDPOINT_URL_*`` apply
exactly as they would for the user's own programs. Sessions are cached per profile: creating one
loads botocore's data files (~100 ms).
"""

from __future__ import annotations

import threading
from typing import Any

from credd import metrics
from credd.models import Credentials

DEFAULT_REGION = "us-east-1"


class ClientFactory:
    """Makes botocore clients with explicit credentials for a profile's settings."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        parameter_validation: bool = True,
    ) -> None:
        """``parameter_validation=False`` only for the sandbox's sub-900 s sessions."""
        self._validate = parameter_validation
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def _session(self, profile: str) -> Any:
        import botocore.session

        with self._lock:
            session = self._sessions.get(profile)
            if session is None:
                session = botocore.session.Session(profile=profile)
                self._sessions[profile] = session
            return session

    def _config(self, **extra: Any) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            # credd does its own backoff with jitter; one quick retry covers a dropped connection.
            retries={"mode": "standard", "total_max_attempts": 2},
            user_agent_extra="credd",
            parameter_validation=self._validate,
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
        """``config``: extra botocore ``Config`` options (e.g. ``signature_version``)."""
        session = self._session(profile)
        region = region or session.get_config_variable("region") or DEFAULT_REGION
        with self._lock:  # botocore sessions are not safe for concurrent client creation
            client = session.create_client(
                service,
                region_name=region,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                config=self._config(**config),
            )
        return metrics.instrument(client)

    def unsigned_client(self, service: str, profile: str, region: str) -> Any:
        """A client for the unsigned IAM Identity Center APIs (``sso``, ``sso-oidc``) in
        ``region`` (the SSO region, not the profile's), honouring the profile's endpoints."""
        from botocore import UNSIGNED

        session = self._session(profile)
        with self._lock:
            client = session.create_client(
                service, region_name=region, config=self._config(signature_version=UNSIGNED)
            )
        return metrics.instrument(client)

    def forget(self) -> None:
        """Drop cached sessions (after the AWS config changed)."""
        with self._lock:
            self._sessions.clear()
