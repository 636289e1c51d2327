"""``credd completion bash|zsh|fish``: scripts generated from the parser, run in the real shells."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = (
    "[default]\nregion = eu-west-1\n[profile work]\nregion = eu-west-1\n"
    "[profile  dev-admin]\n[profiles-not-one]\n"
)

# Complete the words given as arguments with the sourced script, as bash's `complete -F` would.
BASH_DRIVER = """
set -e
source "$1"; shift
complete -p credd >/dev/null
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
fn=$(complete -p credd | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')
"$fn" credd "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
printf '%s\\n' "${COMPREPLY[@]}"
"""


def completion(shell: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "credd.cli", "completion", shell],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "credd.bash"
    path.write_text(completion("bash"))
    return path


def complete(script: Path, home: Path, *words: str) -> list[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", str(script), "credd", *words],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(CONFIG)
    return tmp_path


def test_bash_completes_commands_subcommands_options_and_profiles(
    bash_script: Path, home: Path
) -> None:
    assert complete(bash_script, home, "sta") == ["status"]
    assert sorted(complete(bash_script, home, "st")) == ["status", "stop", "store"]
    assert complete(bash_script, home, "keys", "") == ["set", "import", "delete", "rotate"]
    assert complete(bash_script, home, "vault", "secret-id", "") == ["set", "delete"]
    assert {"--json", "--socket"} <= set(complete(bash_script, home, "status", "--"))
    assert complete(bash_script, home, "completion", "") == ["bash", "zsh", "fish"]
    assert complete(bash_script, home, "refresh", "") == ["default", "work", "dev-admin"]
    assert complete(bash_script, home, "get", "w") == ["work"]
    (home / "sockets").mkdir()
    assert complete(bash_script, home, "status", "--socket", str(home / "so")) == [
        str(home / "sockets")
    ]


def test_bash_profiles_follow_aws_config_file(bash_script: Path, home: Path) -> None:
    other = home / "other-config"
    other.write_text("[profile elsewhere]\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_CONFIG_FILE": str(other)}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "bash", str(bash_script),
         "credd", "status", ""],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert done.stdout.split() == ["elsewhere"], done.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_are_generated_and_parse(shell: str, tmp_path: Path) -> None:
    text = completion(shell)
    assert "_credd_profile_names" in text and "status" in text and "rotate" in text
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"{shell} is not installed: the script is generated but not syntax-checked")
    path = tmp_path / f"credd.{shell}"
    path.write_text(text)
    done = subprocess.run([program, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_completion_is_not_loaded_by_credd_get() -> None:
    """shtab is imported only by `credd completion` (the get path is pinned in test_getcmd)."""
    code = (
        "import sys\n"
        "from credd.cli.app import build_parser\n"
        "build_parser().parse_args(['status'])\n"
        "assert 'shtab' not in sys.modules, 'shtab imported to build the parser'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
