"""The daemon's IMDS endpoints: which profile is served on which port, and for how long.

An endpoint serves one profile (:mod:`credd.server.imds`). It is started

* **by the config:** ``credd_imds = PORT`` in a managed profile (an unprivileged port,
  1024-65535, or ``0``/``auto`` for any free port); ``credd_imds_v1 = true`` also answers
  IMDSv1 (token-less) GETs.
  It runs while the daemon runs and follows reloads (a changed port moves it, a removed key
  stops it);
* **on demand** over the socket: ``POST /v1/imds/{profile}`` (``credd env --imds`` / ``credd
  exec --imds``). A configured endpoint is reused. Otherwise one is started on a free port;
  with ``{"lease": true}`` it lives while the asking process lives (``credd exec`` asks, then
  replaces itself with the command, which keeps its pid: a pidfd tells the daemon when it ends),
  without a lease until the daemon stops (a configured endpoint keeps following the config).

``status`` shows every endpoint under ``daemon.imds``. See docs/imds.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from credd.aws.config import FALSE, TRUE, AwsConfig
from credd.clock import Clock
from credd.errors import ConfigError, CreddError, ProfileNotManaged, RequestError
from credd.server.backend import Backend
from credd.server.imds import ImdsApi, ImdsServer

log = logging.getLogger(__name__)

__all__ = ["ImdsEndpoints", "ImdsWish", "wish_of"]

PORT_KEY = "credd_imds"
V1_KEY = "credd_imds_v1"
MIN_PORT = 1024


@dataclass(frozen=True)
class ImdsWish:
    """What a profile's config asks for: a port (``0``: any) and whether IMDSv1 is answered."""

    port: int
    allow_v1: bool = False


def wish_of(name: str, raw: Mapping[str, Any]) -> ImdsWish | None:
    """``credd_imds`` / ``credd_imds_v1`` of a profile; ``ConfigError`` for a bad value."""
    text = str(raw.get(PORT_KEY, "")).strip().lower()
    if text == "auto":
        text = "0"
    if not text or (text in FALSE | {"none"} and text != "0"):
        return None
    if not text.isdigit() or not (int(text) == 0 or MIN_PORT <= int(text) <= 65535):
        raise ConfigError(
            f"profile {name!r}: credd_imds = {text!r} is not an unprivileged port",
            hint="use a port 1024-65535, or 0 for any free port (see docs/imds.md)",
        )
    v1 = str(raw.get(V1_KEY, "false")).strip().lower()
    if v1 not in TRUE | FALSE:
        raise ConfigError(f"profile {name!r}: credd_imds_v1 = {v1!r} is not true or false")
    return ImdsWish(int(text), v1 in TRUE)


@dataclass
class _Endpoint:
    profile: str
    server: ImdsServer
    configured: bool = False  # started by credd_imds: follows the config
    persistent: bool = False  # asked for without a lease: lives until the daemon stops
    leases: dict[int, int] = field(default_factory=dict)  # pid -> pidfd
    wish: ImdsWish | None = None

    def info(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "url": self.server.url,
            "port": self.server.port,
            "allow_v1": self.server.imds.allow_v1,
            "configured": self.configured,
            "persistent": self.persistent,
            "leases": len(self.leases),
        }


class ImdsEndpoints:
    """Starts, reuses and stops the IMDS endpoints of one daemon. Thread-safe."""

    def __init__(
        self, backend: Backend, clock: Clock, *, info: dict[str, Any] | None = None
    ) -> None:
        self.backend = backend
        self.clock = clock
        self._config: AwsConfig | None = None
        self._endpoints: dict[str, _Endpoint] = {}
        self._errors: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._info = info if info is not None else {}
        self._publish()

    # -- config -----------------------------------------------------------------------------

    def _region(self, profile: str) -> str | None:
        config = self._config
        managed = config.managed.get(profile) if config is not None else None
        return managed.region if managed is not None else None

    def configure(self, config: AwsConfig) -> None:
        """Start, move or stop the endpoints ``credd_imds`` asks for. One bad value is that
        profile's error (in ``status``); the others start."""
        with self._lock:
            self._config = config
            wishes: dict[str, ImdsWish] = {}
            self._errors = {}
            for name, prof in config.managed.items():
                try:
                    wish = wish_of(name, prof.raw)
                except ConfigError as exc:
                    log.error("IMDS endpoint for %s: %s", name, exc)
                    self._errors[name] = exc.to_json()
                    continue
                if wish is not None:
                    wishes[name] = wish
            for name, ep in list(self._endpoints.items()):
                if name not in config.managed:
                    self._stop(name)
                elif ep.configured and wishes.get(name) != ep.wish:
                    ep.configured, ep.wish = False, None
                    if name in wishes or not self._in_use(ep):
                        self._stop(name)  # a new port or IMDSv1 setting: started again below
            for name, wish in wishes.items():
                running = self._endpoints.get(name)
                if running is not None and wish.port in (0, running.server.port):
                    running.configured, running.wish = True, wish
                    running.server.imds.allow_v1 = wish.allow_v1
                    continue
                if running is not None:
                    self._stop(name)  # leased on another port: the configured one wins
                try:
                    self._start(name, wish.port, wish.allow_v1, configured=True).wish = wish
                except CreddError as exc:
                    log.error("IMDS endpoint for %s not started: %s", name, exc)
                    self._errors[name] = exc.to_json()
            self._publish()

    # -- on demand --------------------------------------------------------------------------

    def open(self, profile: str, *, lease_pid: int | None = None) -> dict[str, Any]:
        """The endpoint for ``profile`` (started on a free port when none runs), leased to
        ``lease_pid`` (stopped when it exits) or, without one, kept until the daemon stops."""
        names = {p.name for p in self.backend.status()}
        if profile not in names:
            raise ProfileNotManaged(
                f"credd does not manage a profile named {profile!r}",
                hint=f"enable it: credd enable {profile}, then reload the daemon",
            )
        with self._lock:
            ep = self._endpoints.get(profile)
            if ep is None:
                ep = self._start(profile, 0, False)
            if lease_pid is None:
                ep.persistent = ep.persistent or not ep.configured  # configured: follows config
            elif lease_pid not in ep.leases:
                ep.leases[lease_pid] = _pidfd(lease_pid)
            self._publish()
            return ep.info()

    def reap(self) -> None:
        """Drop leases whose process ended; stop endpoints nobody needs any more."""
        with self._lock:
            changed = False
            for name, ep in list(self._endpoints.items()):
                for pid, fd in list(ep.leases.items()):
                    if _ended(fd):
                        os.close(fd)
                        del ep.leases[pid]
                        changed = True
                        log.info("IMDS endpoint for %s: process %d ended", name, pid)
                if not self._in_use(ep):
                    self._stop(name)
                    changed = True
            if changed:
                self._publish()

    def stop_all(self) -> None:
        with self._lock:
            for name in list(self._endpoints):
                self._stop(name)
            self._publish()

    def url(self, profile: str) -> str | None:
        with self._lock:
            ep = self._endpoints.get(profile)
            return ep.server.url if ep is not None else None

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _in_use(ep: _Endpoint) -> bool:
        return ep.configured or ep.persistent or bool(ep.leases)

    def _start(
        self, profile: str, port: int, allow_v1: bool, *, configured: bool = False
    ) -> _Endpoint:
        api = ImdsApi(
            self.backend,
            profile,
            self.clock,
            region=lambda: self._region(profile),
            allow_v1=allow_v1,
        )
        server = ImdsServer(api, port=port)
        server.start()
        ep = _Endpoint(profile, server, configured=configured)
        self._endpoints[profile] = ep
        log.info("IMDS endpoint for %s on %s", profile, server.url)
        return ep

    def _stop(self, name: str) -> None:
        ep = self._endpoints.pop(name, None)
        if ep is None:
            return
        for fd in ep.leases.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            ep.server.stop()
        except Exception as exc:  # never let one endpoint's stop break the others
            log.error("IMDS endpoint for %s: %s while stopping", name, type(exc).__name__)
        log.info("IMDS endpoint for %s stopped", name)

    def _publish(self) -> None:
        self._info["imds"] = {
            "endpoints": [ep.info() for _, ep in sorted(self._endpoints.items())],
            "errors": dict(self._errors),
        }


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise RequestError(
            f"process {pid} has already ended", hint="ask for the endpoint from a live process"
        ) from None


def _ended(fd: int) -> bool:
    """A pidfd is readable once its process has exited."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
