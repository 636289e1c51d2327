"""``credd get PROFILE [--format json|env] [--socket PATH] [--min-lifetime D]``: the
``credential_process`` path. ``--min-lifetime 2h`` is the lifetime guard (credd/plan/lifetime.py).

Every SDK credential refresh may run this, so it starts at interpreter speed: no argparse, no
``typing``/``pathlib``/``json`` on the success path (the daemon's JSON is passed through as
sent), and nothing of boto3, botocore, keyring or apscheduler (a test pins that). It never reads
stdin, never prompts, and never hangs: connecting fails at once when the daemon is down and the
whole call is bounded by a timeout. On failure it prints one line on stderr
(``credd: MESSAGE: HINT``) and exits with the error's exit code (see credd/errors.py).
"""

import os
import sys

from credd.client import DEFAULT_TIMEOUT, Client

TYPE_CHECKING = False  # not typing's: importing typing costs `credd get` time
if TYPE_CHECKING:
    import argparse

    from credd.cli.base import Subparsers
    from credd.cli.io import Io

USAGE = (
    "usage: credd get PROFILE [--format json|env | --json] [--socket PATH] [--timeout SECONDS] "
    "[--min-lifetime DURATION]"
)
FORMATS = ("json", "env")


class _Usage(Exception):
    pass


def parse(argv: list[str]) -> tuple[str, str, str | None, float]:
    """``(profile, format, socket or None, timeout)``; raises ``_Usage`` with a reason."""
    profile: str | None = None
    fmt = "json"
    sock: str | None = None
    timeout = DEFAULT_TIMEOUT
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
            args.insert(0, value)
        if arg == "--json":  # the alias every read command takes
            fmt = "json"
        elif arg in ("--format", "--socket", "--timeout"):
            if not args:
                raise _Usage(f"{arg} needs a value")
            value = args.pop(0)
            if arg == "--format":
                if value not in FORMATS:
                    raise _Usage(f"--format must be json or env, not {value!r}")
                fmt = value
            elif arg == "--socket":
                sock = value
            else:
                try:
                    timeout = float(value)
                except ValueError:
                    raise _Usage(f"--timeout needs a number of seconds, not {value!r}") from None
                if not 0 < timeout <= 3600:
                    raise _Usage("--timeout must be between 0 and 3600 seconds")
        elif arg == "--":
            if len(args) != 1 or profile is not None:
                raise _Usage("expected exactly one PROFILE")
            profile = args.pop(0)
        elif arg.startswith("-") and arg != "-":
            raise _Usage(f"unknown option {arg}")
        elif profile is None:
            profile = arg
        else:
            raise _Usage(f"unexpected argument {arg!r}")
    if not profile:
        raise _Usage("which profile? give its name")
    return profile, fmt, sock, timeout


def take_min_lifetime(argv: list[str]) -> tuple[list[str], str | None]:
    """``--min-lifetime 2h`` (or ``=2h``) taken out of ``argv``: the lifetime guard."""
    rest: list[str] = []
    value: str | None = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            rest += [arg, *args]
            break
        if arg.startswith("--min-lifetime="):
            value = arg.split("=", 1)[1]
        elif arg == "--min-lifetime":
            if not args:
                raise _Usage("--min-lifetime needs a duration (2h, 90m, 7200)")
            value = args.pop(0)
        else:
            rest.append(arg)
    if value is not None and not value.strip():
        raise _Usage("--min-lifetime needs a duration (2h, 90m, 7200)")
    return rest, value


def env_lines(data: dict[str, object]) -> str:
    """``export NAME=value`` lines (shell-quoted) for the credentials in ``data``."""
    import shlex

    names = (
        ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
        ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
        ("AWS_SESSION_TOKEN", "SessionToken"),
        ("AWS_CREDENTIAL_EXPIRATION", "Expiration"),
    )
    return "".join(
        f"export {var}={shlex.quote(str(data[key]))}\n" for var, key in names if data.get(key)
    )


def _say(line: str) -> None:
    text = " ".join(line.split())  # one line, whatever the message held
    try:  # noqa: SIM105 - contextlib would cost import time here
        os.write(2, f"credd: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _report(exc: BaseException) -> int:
    from credd.errors import CreddError

    if isinstance(exc, CreddError):
        _say(f"{exc.message}: {exc.hint}" if exc.hint else exc.message)
        return exc.exit_code
    # Not one of ours: its text could hold anything, so only its type is shown.
    _say(f"unexpected {type(exc).__name__} while getting credentials; run `credd status`")
    return 1


def main(argv: list[str]) -> int:
    """Run ``credd get`` with ``argv`` (without the leading ``get``); returns the exit code."""
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE + "\n")
        return 0
    try:
        argv, min_lifetime = take_min_lifetime(argv)
        profile, fmt, sock, timeout = parse(argv)
    except _Usage as exc:
        _say(f"{exc}; {USAGE}")
        return 2
    try:
        body = Client(sock, timeout).credentials_raw(profile, min_lifetime)
        if not body.startswith(b"{"):
            from credd.errors import DaemonUnavailable

            raise DaemonUnavailable(
                "the credd daemon sent something that is not credentials",
                hint="see the daemon's log",
            )
        if fmt == "env":
            import json

            out = env_lines(json.loads(body)).encode()
        else:
            out = body + b"\n"
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # reported as one line, never a traceback
        return _report(exc)
    return 0


def register(sub: "Subparsers") -> None:
    """``get`` in the argparse parser, for ``--help``, the docs and shell completion only:
    ``credd get`` itself never reaches argparse (credd/cli/__init__.py dispatches it first)."""
    from credd.cli.base import command

    p = command(
        sub,
        "get",
        _via_argparse,
        "print credentials for PROFILE (what credential_process runs)",
        socket=True,
    )
    p.add_argument("profile", metavar="PROFILE", help="a profile credd manages")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json: the credential_process shape (default); env: export lines",
    )
    p.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    p.add_argument(
        "--timeout", metavar="SECONDS", help=f"give up after this long ({DEFAULT_TIMEOUT:g})"
    )
    p.add_argument(
        "--min-lifetime",
        metavar="DURATION",
        help="credentials lasting at least this long (2h, 90m), refreshed first if need be",
    )


def _via_argparse(args: "argparse.Namespace", io: "Io") -> int:
    argv = [args.profile, "--format", args.format]
    for option, value in (
        ("--socket", args.socket),
        ("--timeout", args.timeout),
        ("--min-lifetime", args.min_lifetime),
    ):
        if value:
            argv += [option, value]
    return main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
