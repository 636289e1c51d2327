"""The one I/O helper of every ``credd`` command: where it reads, writes and prompts.

A command body takes ``(args, io)`` and talks only through :class:`Io`: ``say`` a line on stdout,
``json`` a document on stdout, ``warn`` a ``credd: ...`` line on stderr, ``ask``/``getpass`` a
person, and reach the secret store, the daemon and the browser through factories. Tests hand in
their own streams and seams; the defaults are the process's.
"""

from __future__ import annotations

import getpass as _getpass
import json as _json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from credd.client import Client
    from credd.secrets.store import SecretStore


def _secret_store() -> SecretStore:
    from credd.secrets.store import SecretStore

    return SecretStore()


@dataclass
class Io:
    """Streams and seams of one command run.

    ``prompt`` asks for a visible line (default: write to ``stderr``, read from ``stdin``);
    ``getpass`` asks without echo (default: :func:`getpass.getpass`, which uses the terminal);
    ``client_factory(socket)`` reaches the daemon (default: :class:`credd.client.Client`);
    ``open_browser(url)`` opens a sign-in page (default: :mod:`webbrowser`, decided by the caller).
    """

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    prompt: Callable[[str], str] | None = None
    getpass: Callable[[str], str] = _getpass.getpass
    store_factory: Callable[[], SecretStore] = _secret_store
    open_browser: Callable[[str], bool] | None = None
    client_factory: Callable[[str | None], Any] | None = None

    def say(self, text: str = "") -> None:
        """One line (or several) on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def json(self, document: Any, *, indent: int | None = 2) -> None:
        """A JSON document on stdout, newline-terminated (what every ``--json`` prints)."""
        self.stdout.write(_json.dumps(document, indent=indent) + "\n")
        self.stdout.flush()

    def warn(self, text: str) -> None:
        """A ``credd: ...`` line on stderr: notes, warnings and errors."""
        self.stderr.write(f"credd: {text}\n")
        self.stderr.flush()

    def ask(self, text: str) -> str:
        """A visible answer from the person; ``EOFError`` when stdin ends."""
        if self.prompt is not None:
            return self.prompt(text)
        self.stderr.write(text)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def stdin_is_tty(self) -> bool:
        isatty = getattr(self.stdin, "isatty", None)
        return bool(isatty and isatty())

    def client(self, socket: str | None) -> Client:
        """The daemon's client for ``--socket`` (or the default socket)."""
        if self.client_factory is not None:
            return self.client_factory(socket)  # type: ignore[no-any-return]
        from credd.client import Client

        return Client(socket)


__all__ = ["Io"]
