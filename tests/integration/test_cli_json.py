"""``--json`` on every read command: each prints one JSON document, against a real daemon (sandbox
STS, gnome-keyring) where the command needs one."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from credd.cli.app import build_parser, subcommands
from tests.fixtures.daemon import Daemon, DaemonFactory, assert_no_secret, remember

pytestmark = pytest.mark.integration

# Every command that reads and reports (docs/cli.md), with --json.
READ_COMMANDS = [
    ("status",),
    ("status", "work"),
    ("get", "work"),
    ("env", "work"),
    ("doctor",),
    ("secrets", "check"),
    ("store", "show"),
    ("service", "status"),
    ("version",),
]


def _parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in path:
        parser = subcommands(parser).get(word, parser)
    return parser


def test_every_read_command_takes_json_and_format_json_is_its_alias() -> None:
    for path in READ_COMMANDS:
        words = [w for w in path if w != "work"]
        parser = _parser(tuple(words))
        assert any("--json" in a.option_strings for a in parser._actions), words
    for path, profile in ((("get",), "p"), (("env",), "p")):
        parser = build_parser()
        via_json = parser.parse_args([*path, profile, "--json"])
        via_format = parser.parse_args([*path, profile, "--format", "json"])
        assert vars(via_json) | {"func": None} == vars(via_format) | {"func": None}


@pytest.fixture
def daemon(daemons: DaemonFactory) -> Daemon:
    user, device = daemons.sandbox.new_user_with_mfa("work")
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys("work", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("work", device.seed)
    daemons.write_config("[profile work]\nregion = us-east-1\nservices = sandbox\ncredd = true\n")
    running = daemons.start()
    running.wait_state("work", "fresh")
    return running


def test_each_read_command_prints_json(daemon: Daemon) -> None:
    for path in READ_COMMANDS:
        done = daemon.run(*path, "--json")
        if path == ("service", "status") and done.returncode != 0 and not done.stdout:
            continue  # no systemctl here: service status says so on stderr
        assert done.stdout.strip(), f"credd {' '.join(path)} --json printed nothing: {done.stderr}"
        document: Any = json.loads(done.stdout)
        if path[0] != "get":
            assert_no_secret(done.stdout, f"credd {' '.join(path)} --json")
        else:
            remember(document["SecretAccessKey"], document["SessionToken"])
            assert document["Version"] == 1
        assert isinstance(document, dict), path
    status = json.loads(daemon.run("status", "--json").stdout)
    assert [p["name"] for p in status["profiles"]] == ["work"]
    env = json.loads(daemon.run("env", "work", "--json").stdout)
    assert env["set"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:")


def test_read_commands_print_json_when_the_daemon_is_down(
    daemons: DaemonFactory, tmp_path: Any
) -> None:
    env = {**daemons.env(), "CREDD_SOCKET": str(tmp_path / "none.sock")}
    daemon = Daemon(daemons.home, env, tmp_path / "unused.log")
    done = daemon.run("status", "--json")
    assert done.returncode == 5 and json.loads(done.stdout)["daemon"] is None
    doctor = json.loads(daemon.run("doctor", "--json").stdout)
    assert not doctor["ok"] and any(c["status"] == "fail" for c in doctor["checks"])
