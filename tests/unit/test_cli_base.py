"""The one error wrapper and the one I/O helper every command goes through (credd/cli/base.py)."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from credd.cli.base import BUG_EXIT, command, guarded
from credd.cli.io import Io
from credd.errors import ConfigError, SecretStoreLocked

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def run(body: object, **args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = guarded(body)(argparse.Namespace(command="demo", **args), Io(stdout=out, stderr=err))  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_a_credd_error_is_its_message_hint_and_exit_code() -> None:
    def body(args: argparse.Namespace, io: Io) -> int:
        raise SecretStoreLocked("the keyring is locked", hint="unlock it")

    assert run(body) == (6, "", "credd: the keyring is locked (unlock it)\n")


def test_a_bug_is_one_line_naming_only_the_type(monkeypatch: pytest.MonkeyPatch) -> None:
    def body(args: argparse.Namespace, io: Io) -> int:
        raise ValueError(f"bad value {SECRET}")

    monkeypatch.delenv("CREDD_DEBUG", raising=False)
    code, out, err = run(body, keys_command="set")
    assert code == BUG_EXIT and out == ""
    assert err == (
        "credd: internal error: ValueError in `credd demo set`; this is a bug "
        "(CREDD_DEBUG=1 shows the traceback)\n"
    )
    monkeypatch.setenv("CREDD_DEBUG", "1")
    with pytest.raises(ValueError):
        run(body)


def test_cancelling_is_130_and_says_so() -> None:
    def body(args: argparse.Namespace, io: Io) -> int:
        raise KeyboardInterrupt

    assert run(body)[0] == 130 and "cancelled" in run(body)[2]


def test_command_registers_the_wrapped_body_and_io_prints_json() -> None:
    def body(args: argparse.Namespace, io: Io) -> int:
        io.json({"ok": args.socket})
        if args.fail:
            raise ConfigError("no")
        return 0

    parser = argparse.ArgumentParser()
    p = command(parser.add_subparsers(dest="command"), "x", body, "a command", socket=True)
    p.add_argument("--fail", action="store_true", help="fail")
    args = parser.parse_args(["x", "--socket", "/s"])
    assert args.func.__wrapped__ is body
    out = io.StringIO()
    assert args.func(args, Io(stdout=out)) == 0 and json.loads(out.getvalue()) == {"ok": "/s"}
    args = parser.parse_args(["x", "--fail"])
    assert args.func(args, Io(stdout=io.StringIO(), stderr=io.StringIO())) == 3


def test_only_the_cli_imports_the_cli() -> None:
    """Data flows one way: commands use the library, the library never reaches into credd.cli."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in (root / "credd").rglob("*.py"):
        if "cli" in path.relative_to(root / "credd").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "credd.cli" or n.startswith("credd.cli.") for n in names):
                offenders.append(str(path.relative_to(root)))
    # the demo (leaving for credd_sandbox) shows the status table as `credd status` prints it
    assert set(offenders) <= {"credd/demo.py"}, offenders
