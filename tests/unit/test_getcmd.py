"""`credd get`: the credential_process fast path, run as a real subprocess."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from credd.cli.get import _Usage, env_lines, parse
from credd.models import Credentials
from credd.server.unix import UnixServer
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import SECRET, TOKEN

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"boto3", "botocore", "keyring", "apscheduler"}


def run_get(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credd.cli.get", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_prints_credential_process_json(server: UnixServer) -> None:
    proc = run_get("demo", "--socket", str(server.address))
    assert (proc.returncode, proc.stderr) == (0, "")
    data = json.loads(proc.stdout)
    assert Credentials.from_process_json(data).secret_access_key == SECRET
    assert data["Version"] == 1 and data["SessionToken"] == TOKEN
    assert data["Expiration"] == "2026-01-02T00:00:00Z"


def test_socket_comes_from_the_environment(server: UnixServer) -> None:
    proc = run_get("demo")  # XDG_RUNTIME_DIR (conftest) leads to the server's socket
    assert proc.returncode == 0 and json.loads(proc.stdout)["AccessKeyId"]
    proc = run_get("demo", env={"CREDD_SOCKET": str(server.address), "XDG_RUNTIME_DIR": "/nope"})
    assert proc.returncode == 0


def test_env_format_is_shell_safe(server: UnixServer, backend: MemoryBackend) -> None:
    tricky = 'it\'s $HOME `id` "q" \\ ;'
    backend.add_profile("tricky", Credentials("ASIATRICKY0000000001", tricky, "tok en"))
    proc = run_get("tricky", "--format", "env", "--socket", str(server.address))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "export AWS_ACCESS_KEY_ID=ASIATRICKY0000000001"
    assert "AWS_CREDENTIAL_EXPIRATION" not in proc.stdout  # it has no expiry
    shell = subprocess.run(
        ["sh", "-c", proc.stdout + 'printf "%s|%s" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == f"{tricky}|tok en"


def test_env_format_lists_all_four_variables(server: UnixServer) -> None:
    proc = run_get("demo", "--format=env", f"--socket={server.address}")
    names = [line.split("=", 1)[0] for line in proc.stdout.splitlines()]
    assert names == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_SESSION_TOKEN",
        "export AWS_CREDENTIAL_EXPIRATION",
    ]


def test_needs_mfa_is_one_line_and_exit_4(server: UnixServer) -> None:
    proc = run_get("demo-mfa", "--socket", str(server.address))
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert proc.stderr == "credd: demo-mfa needs an MFA code: run `credd mfa demo-mfa`\n"


def test_unknown_profile_exit_3(server: UnixServer) -> None:
    proc = run_get("nope", "--socket", str(server.address))
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "credd enable nope" in proc.stderr


def test_daemon_down_fails_fast_with_one_line(tmp_path: Path) -> None:
    sock = tmp_path / "gone" / "credd.sock"
    proc = run_get("demo", "--socket", str(sock))
    assert proc.returncode == 5
    assert proc.stdout == ""
    assert proc.stderr == f"credd: no credd daemon is listening on {sock}: start it: credd daemon\n"


def test_never_reads_stdin(server: UnixServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "credd.cli.get", "demo", "--socket", str(server.address)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        # stdin stays open and empty: a command that read it would wait here forever
        assert proc.wait(timeout=30) == 0
        assert proc.stdout is not None and json.loads(proc.stdout.read())["Version"] == 1
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "which profile?"),
        (["a", "b"], "unexpected argument 'b'"),
        (["a", "--format", "xml"], "--format must be json or env"),
        (["a", "--socket"], "--socket needs a value"),
        (["a", "--bogus"], "unknown option --bogus"),
        (["a", "--timeout", "soon"], "--timeout needs a number"),
        (["a", "--timeout", "0"], "between 0 and 3600"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(_Usage, match=message):
        parse(argv)


def test_usage_error_exit_2_and_help_exit_0() -> None:
    proc = run_get("--format", "xml")
    assert proc.returncode == 2 and proc.stderr.startswith("credd: --format must be json or env")
    assert proc.stderr.count("\n") == 1
    proc = run_get("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: credd get PROFILE")


def test_parse_accepts_every_spelling() -> None:
    assert parse(["p", "--format=env", "--socket=/s", "--timeout=2.5"]) == ("p", "env", "/s", 2.5)
    assert parse(["--format", "json", "--", "-odd-name"]) == ("-odd-name", "json", None, 10.0)


def test_env_lines_skip_missing_values() -> None:
    assert env_lines({"AccessKeyId": "A", "SecretAccessKey": "S"}) == (
        "export AWS_ACCESS_KEY_ID=A\nexport AWS_SECRET_ACCESS_KEY=S\n"
    )


# What `credd get` may load beyond the interpreter: the launcher's `credd.cli` (the package
# __init__, nothing but the dispatch), `credd.cli.get`, the stdlib client, and `_socket`.
GET_MODULES = {"credd", "credd.cli", "credd.cli.get", "credd.client", "_socket"}


@pytest.mark.parametrize(
    "entry",
    [
        "from credd.cli.get import main\nargs = []\n",
        "from credd.cli import main\nargs = ['get']\n",  # what bin/credd runs
    ],
    ids=["cli.get", "launcher"],
)
def test_fast_path_imports_nothing_heavy(server: UnixServer, entry: str) -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # what the interpreter (and any .pth) loads anyway
        + entry
        + f"rc = main([*args, 'demo', '--socket', {str(server.address)!r}])\n"
        "sys.stderr.write(repr([sorted(sys.modules), sorted(set(sys.modules) - before)]))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0
    everything, added = (set(names) for names in ast.literal_eval(proc.stderr))
    assert not {m.split(".")[0] for m in everything} & FORBIDDEN
    # nor the expensive parts of the standard library, nor credd's own heavier modules
    assert not added & {"json", "typing", "pathlib", "argparse", "http.client", "ssl", "h11"}
    assert added <= GET_MODULES, added
