"""``credd completion bash|zsh|fish``: a shell completion script, generated from the parser.

The script is static (made by `shtab <https://github.com/iterative/shtab>`_ from the same
argparse parser ``credd --help`` shows), so completing costs the shell nothing at run time and
``credd get`` never meets it. PROFILE arguments complete from the profile names in the AWS config
file (``$AWS_CONFIG_FILE``, else ``~/.aws/config``), read by a small shell function, not Python.

Install (docs/cli.md): ``credd completion bash > ~/.local/share/bash-completion/completions/credd``,
``credd completion zsh > ~/.zfunc/_credd`` (with ``fpath+=~/.zfunc``), or ``credd completion
fish > ~/.config/fish/completions/credd.fish``.
"""

from __future__ import annotations

import argparse
from typing import Any

from credd.cli.base import Subparsers, command
from credd.cli.io import Io

SHELLS = ("bash", "zsh", "fish")

# The profile names of the AWS config file: `[profile NAME]` sections and `[default]`.
_SED = (
    "sed -n -e 's/^[[:space:]]*\\[profile[[:space:]][[:space:]]*\\([^]]*\\)\\].*/\\1/p' "
    "-e 's/^[[:space:]]*\\[\\(default\\)\\].*/\\1/p'"
)
PROFILES: dict[str, Any] = {
    "bash": "_credd_profiles",
    "zsh": "($(_credd_profile_names))",
    "fish": "(_credd_profile_names)",
    "preamble": {
        "bash": (
            "_credd_profile_names() {\n"
            f'  {_SED} "${{AWS_CONFIG_FILE:-$HOME/.aws/config}}" 2>/dev/null\n'
            "}\n"
            '_credd_profiles() { compgen -W "$(_credd_profile_names)" -- "$1"; }\n'
        ),
        "zsh": (
            "_credd_profile_names() {\n"
            f'  {_SED} "${{AWS_CONFIG_FILE:-$HOME/.aws/config}}" 2>/dev/null\n'
            "}\n"
        ),
        "fish": (
            "function _credd_profile_names\n"
            "  set -l config $HOME/.aws/config\n"
            "  set -q AWS_CONFIG_FILE; and set config $AWS_CONFIG_FILE\n"
            f"  {_SED} $config 2>/dev/null\n"
            "end\n"
        ),
    },
}
FILES = {"socket", "from_file"}  # options whose value is a path


def _mark(parser: argparse.ArgumentParser) -> None:
    """Tell shtab what PROFILE and path arguments complete to, through every subcommand."""
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark(child)
        elif action.dest == "profile" and not action.choices:
            action.complete = PROFILES  # type: ignore[attr-defined]
        elif action.dest in FILES:
            action.complete = shtab.FILE  # type: ignore[attr-defined]


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    import shtab

    from credd.cli.app import build_parser

    parser = build_parser()
    _mark(parser)
    text: str = shtab.complete(parser, shell=shell)
    return text


def cmd_completion(args: argparse.Namespace, io: Io) -> int:
    io.stdout.write(script(args.shell))
    return 0


def register(sub: Subparsers) -> None:
    """``completion``."""
    p = command(
        sub,
        "completion",
        cmd_completion,
        "print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for SHELL, generated from credd's own parser: "
        "credd completion bash > ~/.local/share/bash-completion/completions/credd (see "
        "docs/cli.md for zsh and fish).",
    )
    p.add_argument("shell", choices=SHELLS, help="the shell: bash, zsh or fish")
