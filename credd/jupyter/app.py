"""The Jupyter Server extension app: configuration, start-up and shutdown hooks."""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop
from traitlets import Bool, Unicode

from credd.client import default_socket
from credd.jupyter.handlers import handlers
from credd.jupyter.supervisor import DaemonSupervisor
from credd.secrets import files as filestore


class CreddApp(ExtensionApp):
    """credd in Jupyter: keeps the daemon running with the server, and serves ``/credd/api/``.

    Configure in ``~/.jupyter/jupyter_server_config.py`` (kept in the home directory on a hub)::

        c.CreddApp.passphrase_command = "cat /path/only/you/can/read"   # or passphrase_file
    """

    name = "credd"
    load_other_extensions = True

    start_daemon = Bool(
        True, help="Start the credd daemon with the server when none answers on its socket."
    ).tag(config=True)
    stop_daemon = Bool(
        True, help="Stop the daemon when the server stops, if (and only if) this server started it."
    ).tag(config=True)
    socket = Unicode(
        "", help="The daemon's socket (default: $CREDD_SOCKET, else credd's default path)."
    ).tag(config=True)
    passphrase_file = Unicode(
        "",
        help="For the encrypted file store: a file holding its passphrase, readable only by "
        "you (given to the daemon as CREDD_PASSPHRASE_FILE).",
    ).tag(config=True)
    passphrase_command = Unicode(
        "",
        help="For the encrypted file store: a command printing its passphrase, run without a "
        "shell (given to the daemon as CREDD_PASSPHRASE_COMMAND).",
    ).tag(config=True)

    def daemon_environ(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.passphrase_file:
            env[filestore.FILE_ENV] = os.path.expanduser(self.passphrase_file)
        if self.passphrase_command:
            env[filestore.COMMAND_ENV] = self.passphrase_command
        return env

    def initialize_settings(self) -> None:
        env = self.daemon_environ()
        self.supervisor = DaemonSupervisor(self.socket or default_socket(env), env, logger=self.log)
        self.settings["credd_supervisor"] = self.supervisor
        self.settings["credd_start_daemon"] = self.start_daemon
        if self.start_daemon:
            self.supervisor.start_in_background(self._started)

    def _started(self, state: str) -> None:
        sup = self.supervisor
        if state == "needs_setup":
            self.log.warning("credd: not starting the daemon: %s", sup.setup_problem())
        elif state == "running" and sup.started_pid is None:
            self.log.info("credd: a daemon already runs on %s; leaving it alone", sup.socket)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    async def stop_extension(self) -> None:
        supervisor: DaemonSupervisor | None = getattr(self, "supervisor", None)
        if supervisor is not None and self.stop_daemon:
            await IOLoop.current().run_in_executor(None, supervisor.stop_if_started)


__all__ = ["CreddApp"]
