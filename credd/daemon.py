"""Wiring: AWS config -> sources -> manager + scheduler + credentials file + socket server.

``run()`` is ``credd daemon``: it serves until SIGTERM or SIGINT, then shuts down cleanly
(stops accepting, finishes in-flight requests, stops the scheduler). SIGHUP rereads the AWS
config without dropping sessions of unchanged profiles.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from credd import awsconfig
from credd.awsclients import ClientFactory
from credd.clock import Clock, SystemClock
from credd.endpoint import EndpointSettings, ensure_token, token_path
from credd.errors import CreddError, SecretStoreError
from credd.manager import Manager
from credd.mfa import CodeLedger
from credd.models import Credentials
from credd.planner import Node
from credd.refresher import ApsScheduler, RefreshPolicy
from credd.secrets import SecretStore
from credd.server.api import Api
from credd.server.container import ContainerApi, LoopbackServer, PortInUse
from credd.server.unix import UnixServer
from credd.sources import Source, build_source
from credd.sources.codes import ProfileCodes
from credd.sso import TokenStore
from credd.writers import CredentialsFileWriter

log = logging.getLogger(__name__)

# Anything shaped like a secret access key (40 chars) or a session token (100+ chars of base64)
# is masked in every log line, whatever logged it: a second line of defence behind masked reprs.
_SECRETISH = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40,}(?![A-Za-z0-9/+=])")


class RedactingFilter(logging.Filter):
    """Masks secret-shaped strings in log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRETISH.sub("[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("CREDD_LOG_LEVEL") or "INFO").upper())
    for noisy in ("botocore", "urllib3", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Daemon:
    """The running daemon's parts, built from the environment; ``serve()`` blocks."""

    def __init__(
        self,
        socket: Path,
        *,
        clock: Clock | None = None,
        policy: RefreshPolicy | None = None,
        secrets: SecretStore | None = None,
        environ: Mapping[str, str] | None = None,
        endpoint: EndpointSettings | None = None,
    ) -> None:
        self.socket = socket
        self.clock = clock or SystemClock()
        self.environ = os.environ if environ is None else environ
        # A daemon nobody watches must never raise an unlock prompt: a locked keyring is reported.
        self.secrets = secrets or SecretStore(allow_prompt=False)
        sandbox_sessions = awsconfig.session_minimum(self.environ) < awsconfig.SESSION_MIN
        self.clients = ClientFactory(parameter_validation=not sandbox_sessions)
        self.ledger = CodeLedger(self.clock)
        self.tokens = TokenStore(clock=self.clock)  # the SSO cache shared with the AWS CLI
        self.scheduler = ApsScheduler()
        self.manager = Manager(
            source_factory=self._source,
            scheduler=self.scheduler,
            clock=self.clock,
            writer=CredentialsFileWriter(),
            policy=policy,
            socket_path=str(socket),
            code_source_of=self._code_source_of,
        )
        self.server = UnixServer(socket, Api(self.manager, self.clock))
        self.endpoint_settings = endpoint or EndpointSettings.resolve(environ=self.environ)
        self.endpoint: LoopbackServer | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()

    def _source(self, node: Node, parent: Callable[[], Credentials]) -> Source:
        return build_source(
            node,
            parent,
            secrets=self.secrets,
            clients=self.clients,
            ledger=self.ledger,
            clock=self.clock,
            environ=self.environ,
            tokens=self.tokens,
        )

    def _code_source_of(self, profile: awsconfig.ManagedProfile) -> str:
        try:
            return ProfileCodes(profile, self.secrets, self.clock).configured().name
        except CreddError:
            return "person"  # unknown (keyring down): plan for the strictest case

    def reload(self) -> None:
        """Reread the AWS files; keep sessions of profiles whose settings did not change."""
        try:
            config = awsconfig.load(self.environ)
        except CreddError as exc:
            log.error("config not reloaded, keeping the previous one: %s", exc)
            return
        self.clients.forget()
        self.manager.load(config)
        log.info("config reloaded: %d managed profiles", len(config.managed) + len(config.broken))

    def start(self) -> None:
        config = awsconfig.load(self.environ)
        try:
            self.secrets.check()
        except SecretStoreError as exc:
            # Profiles with keys in the files and mfa_process can still work: say it, go on.
            log.warning("secret store not usable: %s", exc)
        self.manager.load(config)
        self.server.start()
        self.start_endpoint()
        self.scheduler.start()
        self.manager.start()
        log.info(
            "credd %s ready on %s: %d managed profiles (%d with config errors)",
            self.manager.daemon_info()["version"],
            self.socket,
            len(config.managed) + len(config.broken),
            len(config.broken),
        )

    def start_endpoint(self) -> None:
        """Start the container endpoint. Failing to is logged and shown in ``status``: the
        unix socket keeps serving either way."""
        settings = self.endpoint_settings
        info: dict[str, Any] = {
            "state": "off", "url": None, "port": None, "token_file": None,
            "error": None, "note": None,
        }  # fmt: skip
        self.manager.info_extra["endpoint"] = info
        if not settings.enabled:
            info["note"] = "turned off (--no-endpoint or CREDD_ENDPOINT_PORT=off)"
            log.info("container endpoint: off")
            return
        path = token_path(self.environ)
        wanted = settings.wanted_port()
        try:
            api = ContainerApi(self.manager, ensure_token(path))
            server = LoopbackServer(api, port=wanted)
            try:
                server.start()
            except PortInUse as exc:
                if settings.explicit:
                    raise
                log.error(
                    "container endpoint: the default port %d is taken (%s); using a free port",
                    wanted,
                    exc.message,
                )
                server = LoopbackServer(api, port=0)
                server.start()
                info["note"] = (
                    f"the default port {wanted} was taken; using port {server.port} until "
                    "restart (choose one with --endpoint-port / CREDD_ENDPOINT_PORT)"
                )
        except CreddError as exc:
            log.error("container endpoint not started: %s; the unix socket still serves", exc)
            info.update(state="error", port=wanted, error=exc.to_json())
            return
        self.endpoint = server
        info.update(state="serving", url=server.url, port=server.port, token_file=str(path))
        log.info("container endpoint on %s (token in %s)", server.url, path)

    def stop(self) -> None:
        self._stop.set()

    def serve(self) -> None:
        """Block until :meth:`stop` (or a signal), handling reloads; then shut down."""
        try:
            while not self._stop.is_set():
                self._stop.wait(0.5)
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        log.info("credd stopping")
        if self.endpoint is not None:
            self.endpoint.stop()
        self.server.stop()
        self.manager.stop()
        self.scheduler.shutdown()
        log.info("credd stopped")

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self._stop.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


def run(
    socket: Path, *, log_level: str | None = None, endpoint: EndpointSettings | None = None
) -> int:
    """``credd daemon``: run in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    setup_logging(log_level)
    daemon = Daemon(socket, endpoint=endpoint)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except CreddError as exc:
        log.error("credd cannot start: %s", exc)
        try:
            daemon.shutdown()
        except Exception:
            log.debug("shutdown after failed start also failed", exc_info=True)
        return exc.exit_code
    daemon.serve()
    return 0
