"""What the servers need from the daemon: one small interface, implemented by the manager."""

from __future__ import annotations

from typing import Any, Protocol

from credd.models import Credentials, ProfileStatus


class Backend(Protocol):
    """The daemon as the request handlers see it. Every method may raise a ``CreddError``."""

    def daemon_info(self) -> dict[str, Any]:
        """``{"version", "pid", "started_at", ...}``: no secrets. The daemon adds its own facts
        (socket, endpoints) where it composes the API (``Api(info=...)``)."""

    def status(self) -> list[ProfileStatus]:
        """One entry per managed profile, sorted by name."""

    # Optional: ``status_json() -> bytes``, the JSON array of ``to_json(now)`` of every entry of
    # ``status()`` as the socket sends it; the manager keeps it as text and rebuilds only the
    # profiles that changed, so an unchanged status of 1,000 profiles is not rebuilt per request.

    def credentials(self, profile: str) -> Credentials:
        """Current credentials for ``profile``, fit to serve (comfortably before expiry).

        May block a few seconds while a first fetch is in flight. Raises ``ProfileNotManaged``,
        ``NeedsMfa`` (hint says what to run), ``NotReady`` or another ``CreddError``.
        """

    def credentials_nowait(self, profile: str) -> Credentials | None:
        """Credentials fit to serve if held right now, else ``None``. Never blocks, never raises.

        Lets the transport answer the hot path on its event loop; anything else (a first fetch,
        an error to report) goes through :meth:`credentials` on a worker thread.
        """

    def push_mfa_code(self, profile: str, code: str) -> ProfileStatus:
        """Use ``code`` now to refresh ``profile``'s MFA session; returns the new status.

        Raises ``MfaCodeRejected``, ``MfaCodeReused``, ``UsageError`` (not 6 digits), ...
        """

    def refresh(self, profile: str) -> ProfileStatus:
        """Refresh ``profile`` now (joining one already running) and wait for the outcome."""
