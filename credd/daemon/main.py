"""Wiring: AWS config -> sources -> manager + scheduler + credentials file + socket server.

``run()`` is ``credd daemon``: it serves until SIGTERM or SIGINT, then shuts down cleanly
(stops accepting, finishes in-flight requests, stops the scheduler). SIGHUP rereads the AWS
config without dropping sessions of unchanged profiles.

Under systemd (docs/service.md) it speaks the service protocol through :mod:`credd.daemon.systemd`:
``READY=1`` once the socket serves, ``STATUS=`` a one-line summary whenever it changes,
``WATCHDOG=1`` from the serve loop only while the socket answers and the scheduler runs,
``RELOADING=1`` / ``READY=1`` around a SIGHUP reload, ``STOPPING=1``; and it serves a socket
handed over by socket activation (``LISTEN_FDS``).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket as _socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory, Limiter, max_inflight
from credd.clock import Clock, ClockWatch, SystemClock
from credd.daemon import desktop as notify
from credd.daemon.systemd import Notifier, listen_fds, watchdog_interval
from credd.engine.manager import Manager
from credd.engine.persist import Persist
from credd.engine.scheduler import ApsScheduler, RefreshPolicy
from credd.engine.state import State
from credd.errors import ConfigError, CreddError, SecretStoreError
from credd.files.credentials import CredentialsFileWriter
from credd.models import ProfileStatus
from credd.plan.planner import Node
from credd.secrets.store import SecretStore
from credd.server.api import Api
from credd.server.container import ContainerApi, LoopbackServer, PortInUse
from credd.server.endpoint import EndpointSettings, ensure_token, token_path
from credd.server.imds_endpoints import ImdsEndpoints
from credd.server.unix import UnixServer
from credd.sources import Source, build_source
from credd.sources.codes import code_source_of
from credd.sources.mfa import CodeLedger
from credd.sso import TokenStore
from credd.sso.device import DeviceLogins

log = logging.getLogger(__name__)

#: Refresh jobs run at once per AWS call slot (``CREDD_MAX_INFLIGHT``).
JOBS_PER_CALL_SLOT = 4

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
        if record.exc_info and not record.exc_text:  # tracebacks (DEBUG) are masked too
            record.exc_text = _SECRETISH.sub(
                "[redacted]", logging.Formatter().formatException(record.exc_info)
            )
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


#: How ``STATUS=`` names each state, in the order it lists them.
_STATE_WORDS = (
    (State.FRESH, "fresh"),
    (State.REFRESHING, "refreshing"),
    (State.PENDING, "pending"),
    (State.NEEDS_MFA, "needs MFA"),
    (State.LOGIN_REQUIRED, "needs login"),
    (State.BACKOFF, "backing off"),
    (State.ERROR, "in error"),
)


def summary(statuses: Iterable[ProfileStatus]) -> str:
    """The one-line ``STATUS=``: ``"5 fresh, 1 needs MFA"``."""
    counts = Counter(s.state for s in statuses)
    if not counts:
        return "no managed profiles"
    known = dict(_STATE_WORDS)
    parts = [f"{counts[state]} {word}" for state, word in _STATE_WORDS if counts[state]]
    parts += [f"{n} {state}" for state, n in sorted(counts.items()) if state not in known]
    return ", ".join(parts)


#: While a person is needed, how often the desktop notifier looks again (for its reminders).
OBSERVE_EVERY = 60.0
#: While profiles keep changing, statuses are rebuilt at most every this many build times.
STATUS_COST_FACTOR = 10.0


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
        listen_fd: int | None = None,
        notifier: Notifier | None = None,
        desktop: notify.Notifier | None = None,
    ) -> None:
        self.socket = socket
        self.clock = clock or SystemClock()
        self.environ = os.environ if environ is None else environ
        # A daemon nobody watches must never raise an unlock prompt: a locked keyring is reported.
        self.secrets = secrets or SecretStore(allow_prompt=False)
        short_sessions = awsconfig.session_minimum(self.environ) < awsconfig.SESSION_MIN
        # One factory for every AWS call (STS, IAM, SSO-OIDC, SSO portal): reload resets it once.
        self.clients = ClientFactory(
            parameter_validation=not short_sessions, limiter=Limiter(max_inflight(self.environ))
        )
        self.ledger = CodeLedger(self.clock)
        # the SSO cache shared with the AWS CLI
        self.tokens = TokenStore(clients=self.clients, clock=self.clock)
        # A refresh job holds its worker until the credentials file is written (group commit,
        # one rewrite per batch): more jobs than AWS call slots, so waiting for the file never
        # leaves the slots idle, and the batches grow with the file's commit time (issue 9).
        self.scheduler = ApsScheduler(workers=self.clients.limiter.size * JOBS_PER_CALL_SLOT)
        self.manager = Manager(
            source_factory=self._source,
            scheduler=self.scheduler,
            clock=self.clock,
            writer=CredentialsFileWriter(),
            policy=policy,
            code_source_of=self._code_source_of,
            # sessions survive restarts: saved in the secret store, restored at start
            persist=Persist(self.secrets, clock=self.clock, environ=self.environ),
        )
        #: the daemon's own facts for ``status`` (socket, endpoints), added to the manager's
        #: where ``status`` is composed (the socket API); never secrets
        self.facts: dict[str, Any] = {"socket": str(socket)}
        # IMDS endpoints (docs/imds.md): from credd_imds in the config, or asked for on the socket
        self.imds = ImdsEndpoints(self.manager, self.clock, info=self.facts)
        # device-code SSO logins asked for on the socket (the Jupyter extension, docs/sso.md)
        self.logins = DeviceLogins(
            clients=self.clients, clock=self.clock, refresh=self.manager.refresh, environ=environ
        )
        info = self.facts.copy  # read when a status is composed
        api = Api(self.manager, self.clock, imds=self.imds, logins=self.logins, info=info)
        self.server = UnixServer(socket, api, listen_fd=listen_fd)
        self.notifier = notifier or Notifier(self.environ)
        self.desktop = desktop or notify.Notifier(self.clock, environ=self.environ)
        self.watchdog_every = watchdog_interval(self.environ)
        self._status_sent: str | None = None
        self._changes_seen: int | None = None  # the manager's change counter at the last build
        self._next_observe = 0.0
        self._next_build = 0.0
        #: statuses are rebuilt at most this many times their build cost apart while profiles keep
        #: changing (1,000 refreshing profiles: a build per few seconds, not per 0.5 s tick)
        self.status_cost_factor = STATUS_COST_FACTOR
        self._unhealthy: str | None = None
        self.endpoint_settings = endpoint or EndpointSettings.resolve(environ=self.environ)
        self.endpoint: LoopbackServer | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.clock_watch = ClockWatch(self.clock)

    def _source(self, node: Node) -> Source:
        return build_source(
            node,
            secrets=self.secrets,
            clients=self.clients,
            ledger=self.ledger,
            clock=self.clock,
            environ=self.environ,
            tokens=self.tokens,
        )

    def _code_source_of(self, profile: awsconfig.ManagedProfile) -> str | None:
        """The one decision (credd/sources/codes.py), read from the keyring: the planner keeps it
        on the node, status and doctor read it from there."""
        return code_source_of(self.secrets)(profile)

    def read_config(self) -> awsconfig.AwsConfig:
        """The AWS files, validated; a ``CreddError`` (never anything else) when unreadable."""
        try:
            return awsconfig.load(self.environ)
        except CreddError:
            raise
        except Exception as exc:  # a bug on bad input: the type only, its text may hold a secret
            log.error("unexpected %s while reading the AWS config", type(exc).__name__)
            raise ConfigError(
                f"the AWS config could not be read (unexpected {type(exc).__name__})",
                hint="see the daemon's log; please report it",
            ) from None

    def reload(self) -> None:
        """Reread the AWS files; keep sessions of profiles whose settings did not change.

        Never raises: a file botocore cannot parse, or any unexpected error on the way, keeps
        the previous config (logged by type only: the text could contain a secret)."""
        try:
            config = self.read_config()
        except CreddError as exc:
            log.error("config not reloaded, keeping the previous one: %s", exc)
            return
        self.clients.load(config.full)  # every cached client goes: new endpoints apply at once
        try:
            self.manager.load(config)
            self.imds.configure(config)
        except Exception as exc:  # last resort: the daemon keeps serving what it had
            log.error(
                "config not reloaded, keeping the previous one: unexpected %s while adopting it",
                type(exc).__name__,
            )
            return
        log.info("config reloaded: %d managed profiles", len(config.managed) + len(config.broken))

    def start(self) -> None:
        config = self.read_config()
        try:
            self.secrets.check()
        except SecretStoreError as exc:
            # Profiles with keys in the files and mfa_process can still work: say it, go on.
            log.warning("secret store not usable: %s", exc)
        self.clients.load(config.full)
        self.manager.load(config)
        self.server.start()
        self.start_endpoint()
        self.imds.configure(config)
        self.scheduler.start()
        self.manager.start()
        log.info(
            "credd %s ready on %s: %d managed profiles (%d with config errors)",
            self.manager.daemon_info()["version"],
            self.socket,
            len(config.managed) + len(config.broken),
            len(config.broken),
        )
        self._status_sent = summary(self.manager.status())
        self.notifier.ready(self._status_sent)

    def start_endpoint(self) -> None:
        """Start the container endpoint. Failing to is logged and shown in ``status``: the
        unix socket keeps serving either way."""
        settings = self.endpoint_settings
        info: dict[str, Any] = {
            "state": "off", "url": None, "port": None, "token_file": None,
            "error": None, "note": None,
        }  # fmt: skip
        self.facts["endpoint"] = info
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
        """Block until :meth:`stop` (or a signal), handling reloads, keeping ``STATUS=`` current
        and pinging the watchdog while healthy; then shut down."""
        tick = min(0.5, self.watchdog_every or 0.5)
        next_ping = 0.0
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self.notifier.reloading()
                    self.reload()
                    self._status_sent = summary(self.manager.status())
                    self.notifier.ready(self._status_sent)
                self.watch_clock()
                self.update_status()
                self.imds.reap()
                if self.watchdog_every is not None and time.monotonic() >= next_ping:
                    if self.check_health():
                        self.notifier.watchdog()
                    next_ping = time.monotonic() + self.watchdog_every
                self._stop.wait(tick)
        finally:
            self.shutdown()

    def watch_clock(self) -> None:
        """After a resume from suspend or a clock change, run the refreshes now due: timers
        wait on the monotonic clock, which stood still while the machine slept."""
        jump = self.clock_watch.check()
        if jump is not None:
            log.info("the wall clock jumped %+.0f s (resume from suspend or clock change)", jump)
            self.manager.wake()

    def update_status(self) -> None:
        """Send ``STATUS=`` when the summary changed, and show the desktop what changed.

        Idle means idle: statuses are rebuilt only when the manager's change counter moved, or,
        while a person is needed, once a minute (the notifier's reminders), never per tick."""
        changes, now = self.manager.changes, time.monotonic()
        if changes == self._changes_seen and not (
            now >= self._next_observe and self.desktop.pending()
        ):
            return
        if now < self._next_build:
            return  # still changing fast: seen on a later tick
        self._changes_seen, self._next_observe = changes, now + OBSERVE_EVERY
        statuses = self.manager.status()
        cost = time.monotonic() - now
        self._next_build = now + cost * self.status_cost_factor
        self.desktop.observe(statuses)
        text = summary(statuses)
        if text != self._status_sent:
            self._status_sent = text
            self.notifier.status(text)

    def health_problem(self) -> str | None:
        """Why the daemon is not doing its work, or ``None``: the refresh scheduler's thread is
        alive and the socket answers a status request (event loop, handler pool and manager)."""
        if not self.scheduler.alive():
            return "the refresh scheduler thread has stopped"
        from credd.client import Client

        timeout = max(1.0, min(10.0, self.watchdog_every or 10.0))
        try:
            Client(self.socket, timeout=timeout).status()
        except CreddError as exc:
            return f"the socket does not answer: {exc.message}"
        return None

    def check_health(self) -> bool:
        problem = self.health_problem()
        if problem != self._unhealthy:
            if problem:
                log.error("unhealthy, not pinging the watchdog: %s", problem)
                self.notifier.status(f"unhealthy: {problem}")
            else:
                log.info("healthy again")
                self._status_sent = self._changes_seen = None  # resend the summary
            self._unhealthy = problem
        return problem is None

    def shutdown(self) -> None:
        log.info("credd stopping")
        self.notifier.stopping()
        if self.endpoint is not None:
            self.endpoint.stop()
        self.imds.stop_all()
        self.logins.stop()
        self.server.stop()
        self.manager.stop()
        self.scheduler.shutdown()
        log.info("credd stopped")
        self.notifier.close()
        self.desktop.close()

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
    listen_fd, socket = activated_socket(socket)
    daemon = Daemon(socket, endpoint=endpoint, listen_fd=listen_fd)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except CreddError as exc:
        log.error("credd cannot start: %s", exc)
        try:
            daemon.shutdown()
        except Exception:
            log.debug("shutdown after failed start also failed", exc_info=True)
        daemon.notifier.status(f"cannot start: {exc.message}")
        return exc.exit_code
    daemon.serve()
    return 0


def activated_socket(configured: Path) -> tuple[int | None, Path]:
    """The socket systemd handed over (``LISTEN_FDS``), and the path it is bound to.

    Without socket activation: ``(None, configured)``."""
    fds = listen_fds()
    if not fds:
        return None, configured
    if len(fds) > 1:
        log.warning("socket activation passed %d sockets; serving the first", len(fds))
    probe = _socket.socket(fileno=fds[0])
    try:
        name = probe.getsockname() if probe.family == _socket.AF_UNIX else None
    finally:
        probe.detach()
    path = Path(name) if isinstance(name, str) and name else configured
    if path != configured:
        log.warning("serving the activated socket %s, not %s", path, configured)
    log.info("socket activation: serving fd %d (%s)", fds[0], path)
    return fds[0], path
