"""Every CLI command is documented in docs/cli.md and has help text (sqlite-utils' habit)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from credd.cli.app import build_parser, command_names

DOC = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()


def test_every_command_has_a_section_in_the_docs() -> None:
    documented = set(re.findall(r"^## `credd ([a-z]+)", DOC, flags=re.M))
    documented |= {
        word
        for heading in re.findall(r"^## (.+)$", DOC, flags=re.M)
        for word in re.findall(r"`credd ([a-z]+)", heading)
    }
    missing = set(command_names()) - documented
    assert not missing, f"commands missing from docs/cli.md: {sorted(missing)}"
    assert "daemon" in command_names() and "get" in command_names()


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
                seen += 1 + _check(child, f"{path} {name}")
            continue
        assert action.help, f"{path}: option {action.dest} has no help text"
    return seen


def test_every_command_and_option_has_help() -> None:
    assert _check(build_parser(), "credd") >= 15
