"""Every CLI command and subcommand is documented in docs/cli.md and has help text
(sqlite-utils' habit)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from credd.cli.app import build_parser, command_names, subcommands

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def _paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for name, child in subcommands(parser).items():
        yield (*prefix, name)
        yield from _paths(child, (*prefix, name))


def _documented() -> list[list[set[str]]]:
    """Each ``credd WORD|WORD WORD ...`` in a heading: the words allowed at each position."""
    out = []
    for heading in re.findall(r"^## (.+)$", DOC, flags=re.M):
        for usage in re.findall(r"`credd ([^`]+)`", heading):
            words = []
            for word in usage.split():
                if not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", word):
                    break
                words.append(set(word.split("|")))
            out.append(words)
    return out


def test_every_command_and_subcommand_has_a_section_in_the_docs() -> None:
    usages = _documented()
    paths = list(_paths(build_parser()))
    missing = [
        " ".join(path)
        for path in paths
        if not any(
            len(u) >= len(path) and all(w in u[i] for i, w in enumerate(path)) for u in usages
        )
    ]
    assert not missing, f"commands missing from the headings of docs/cli.md: {missing}"
    assert {"daemon", "get", "completion"} <= set(command_names())
    assert ("vault", "secret-id", "set") in paths and ("keys", "rotate") in paths


def _check(parser: argparse.ArgumentParser, path: str) -> int:
    """Every subcommand has help, every option has help; returns how many commands were seen."""
    seen = 0
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"{path} {name}: no help text"
                assert child.description, f"{path} {name}: no description"
                seen += 1 + _check(child, f"{path} {name}")
            continue
        assert action.help, f"{path}: option {action.dest} has no help text"
    return seen


def test_every_command_and_option_has_help() -> None:
    assert _check(build_parser(), "credd") >= 40


def test_socket_is_declared_once() -> None:
    """Every --socket is the one shared option (credd/cli/base.py), not a copy."""
    from credd.cli.base import socket_parent

    (shared,) = (a for a in socket_parent()._actions if a.dest == "socket")
    found = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if "--socket" in action.option_strings:
                found.append(action)
        for child in subcommands(parser).values():
            walk(child)

    walk(build_parser())
    assert len(found) >= 15 and all(a is shared for a in found)


def test_every_cli_module_with_commands_is_mounted() -> None:
    """Each credd/cli/<group>.py with a register() is in app.GROUPS (one registration style)."""
    from credd.cli.app import GROUPS

    cli = Path(__file__).resolve().parents[2] / "credd" / "cli"
    with_register = {p.stem for p in cli.glob("*.py") if "\ndef register(" in p.read_text()}
    assert with_register == set(GROUPS)
