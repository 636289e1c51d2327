"""The one registration style and the one error wrapper of every ``credd`` command.

Each ``credd/cli/<group>.py`` has ``register(sub)`` that adds its commands with :func:`command`:
the body is a plain function ``(args, io) -> exit code`` that raises :class:`CreddError` on
purpose; :func:`command` sets ``func=`` to the body wrapped by :func:`guarded`, so
``args.func(args)`` (or ``args.func(args, io)`` in tests) always returns an exit code:

* a ``CreddError``: ``credd: MESSAGE (HINT)`` on stderr, the error's exit code;
* Ctrl-C or end of input at a prompt: ``credd: cancelled``, 130;
* anything else is a bug: one line naming the exception's type (its text could hold a secret),
  exit code :data:`BUG_EXIT`; ``CREDD_DEBUG=1`` re-raises it for the traceback.

``--socket`` is declared once, in :func:`socket_parent`, and shared by every command that talks
to the daemon (``command(..., socket=True)``).
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from credd.cli.io import Io
from credd.errors import CreddError, UsageError

Body = Callable[[argparse.Namespace, Io], int]
Handler = Callable[..., int]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

BUG_EXIT = 70  # EX_SOFTWARE: not an error credd raises on purpose
SOCKET_HELP = "the daemon's socket (default: $CREDD_SOCKET, else $XDG_RUNTIME_DIR/credd/credd.sock)"


@functools.cache
def socket_parent() -> argparse.ArgumentParser:
    """The one ``--socket`` option, as a parent parser for ``add_parser(parents=...)``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--socket", metavar="PATH", help=SOCKET_HELP)
    return parent


def guarded(body: Body, *, cancelled: str = "cancelled") -> Handler:
    """``body`` as a handler: default :class:`Io`, every outcome an exit code (module doc)."""

    @functools.wraps(body)
    def handler(args: argparse.Namespace, io: Io | None = None) -> int:
        io = io or Io()
        try:
            return int(body(args, io))
        except CreddError as exc:
            io.warn(str(exc))
            return exc.exit_code
        except (EOFError, KeyboardInterrupt):
            io.warn(cancelled)
            return 130
        except BrokenPipeError:
            return 1
        except Exception as exc:
            if os.environ.get("CREDD_DEBUG"):
                raise
            top = args.__dict__.get("command")  # `exec` has its own `command` argument
            name = " ".join(filter(None, (top if isinstance(top, str) else "", _sub(args))))
            io.warn(
                f"internal error: {type(exc).__name__} in `credd {name}`; this is a bug "
                "(CREDD_DEBUG=1 shows the traceback)"
            )
            return BUG_EXIT

    return handler


def _sub(args: argparse.Namespace) -> str:
    return " ".join(str(v) for k, v in vars(args).items() if k.endswith("_command") and v)


def command(
    sub: Subparsers,
    name: str,
    body: Body,
    help: str,
    *,
    description: str | None = None,
    socket: bool = False,
    cancelled: str = "cancelled",
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add command ``name`` running ``body``; ``socket=True`` gives it ``--socket``."""
    parents = [socket_parent()] if socket else []
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help, parents=parents, **kwargs
    )
    p.set_defaults(func=guarded(body, cancelled=cancelled))
    return p


def group(sub: Subparsers, name: str, help: str, *, description: str | None = None) -> Subparsers:
    """A command with subcommands (``credd keys set``): returns its subparsers."""
    p = sub.add_parser(name, help=help, description=description or help)
    dest = f"{name.replace('-', '_')}_command"
    children: Subparsers = p.add_subparsers(dest=dest, metavar="COMMAND", required=True)
    return children


def profile_arg(args: argparse.Namespace) -> str:
    """The PROFILE argument, else ``$AWS_PROFILE``; a usage error when neither is given."""
    from credd.aws.config import profile_from_env

    name = args.profile or profile_from_env()
    if not name:
        raise UsageError("which profile?", hint="name it, or set AWS_PROFILE")
    return str(name)


__all__ = ["BUG_EXIT", "Body", "command", "group", "guarded", "profile_arg", "socket_parent"]
