"""Bad values in the AWS files: each one a per-profile config error, never a dead daemon.

One test per class of crash the config fuzz (tests/integration/test_config_fuzz.py) found, each
failing on the code before the fix: a quote in ``mfa_process``, a 1,000-hop role chain, digits
that are not ASCII, indented sub-sections where a value belongs, a parse error quoting a secret.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from credd.aws import config as awsconfig
from credd.daemon.main import Daemon
from credd.engine.entry import parents_first as _parents_first
from credd.engine.persist import fingerprint
from credd.errors import ConfigError
from credd.files.config import enable_profile
from credd.plan.planner import MAX_CHAIN, Node, plan_for
from credd.sources.mfa import ProcessCodes
from credd.testing.clock import FakeClock
from tests.fixtures.keyring import KeyringEnv

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # stands for a TOTP seed someone put in the command
ARN = "arn:aws:iam::123456789012"
ROLE = f"role_arn = {ARN}:role/r\nsource_profile = user"
NINES = "9" * 5000  # int() refuses a string this long
USER = f"[profile user]\ncredd = true\nmfa_serial = {ARN}:mfa/user\n"


def write(home: Path, config: str, credentials: str = "") -> None:
    aws = home / ".aws"
    aws.mkdir(mode=0o700, exist_ok=True)
    (aws / "config").write_text(config)
    (aws / "credentials").write_text(credentials)


def chain(hops: int, *, loop: bool = False) -> str:
    """``p0`` (an IAM user) <- ``p1`` <- ... <- ``p{hops}``, each a managed role."""
    first = f"source_profile = p{hops}\nrole_arn = {ARN}:role/r0\n" if loop else ""
    out = [f"[profile p0]\ncredd = true\nmfa_serial = {ARN}:mfa/p0\n{first}"]
    out += [
        f"[profile p{i}]\ncredd = true\nrole_arn = {ARN}:role/r{i}\nsource_profile = p{i - 1}\n"
        for i in range(1, hops + 1)
    ]
    return "".join(out)


@pytest.fixture
def daemon(clean_env: Path, keyring_env: KeyringEnv) -> Daemon:
    """The real daemon's load path in this process (its servers and scheduler not started)."""
    return Daemon(clean_env / "run" / "credd.sock", secrets=keyring_env.store(allow_prompt=False))


def states(daemon: Daemon) -> dict[str, str]:
    return {s.name: s.state for s in daemon.manager.status()}


# -- mfa_process ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["oathtool --totp -b " + SEED + " --label Bob's", 'oathtool "' + SEED, SEED + " \\", "''"],
)
def test_a_bad_mfa_process_is_that_profiles_config_error_and_never_echoed(
    clean_env: Path, daemon: Daemon, command: str
) -> None:
    write(clean_env, USER + f"[profile bob]\ncredd = true\nmfa_process = {command}\n")
    daemon.reload()  # before the fix: ValueError from shlex.split, out of status()
    assert states(daemon) == {"user": "pending", "bob": "error"}
    bob = daemon.manager.profile_status("bob")
    assert bob.error is not None and bob.error["code"] == "config_invalid"
    assert "mfa_process" in bob.error["message"]
    assert SEED not in str(bob.error)


def test_the_code_source_splits_with_the_same_check(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be split"):
        ProcessCodes("bob", "echo Bob's", FakeClock())
    with pytest.raises(ConfigError, match="empty"):
        ProcessCodes("bob", "   ", FakeClock())
    assert awsconfig.mfa_command("bob", '"Bob\'s phone" --code') == ["Bob's phone", "--code"]


def test_enable_refuses_what_the_daemon_would_refuse(clean_env: Path) -> None:
    write(clean_env, "[profile bob]\nregion = eu-west-1\n" + chain(70))
    config = clean_env / ".aws" / "config"
    before = config.read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "credd.cli", "enable", "bob", "--mfa-process", f"x {SEED} Bob's"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 3, bad.stderr  # before the fix: 0, and the daemon died on it
    assert "mfa_process cannot be split" in bad.stderr and SEED not in bad.stderr
    assert config.read_text() == before  # nothing written
    with pytest.raises(ConfigError, match="neither an ARN"):
        enable_profile("bob", {"mfa_serial": "my phone"})
    with pytest.raises(ConfigError, match="longer than 64 hops"):
        enable_profile("p70")  # the planner's refusal too
    with pytest.raises(ConfigError, match="does not exist"):
        enable_profile("bob", {"role_arn": f"{ARN}:role/r", "source_profile": "nobody"})
    assert config.read_text() == before
    enable_profile("bob", {"mfa_process": '"Bob\'s phone" --code'})
    assert awsconfig.load().managed["bob"].mfa_process == '"Bob\'s phone" --code'


# -- deep and looping chains ---------------------------------------------------------------


def test_a_thousand_hop_chain_is_a_config_error_naming_the_chain(
    clean_env: Path, daemon: Daemon
) -> None:
    write(clean_env, chain(1000))
    daemon.reload()  # before the fix: RecursionError in _parents_first, Node ==, persist
    seen = states(daemon)
    assert len(seen) == 1001
    assert {seen[f"p{i}"] for i in range(MAX_CHAIN + 1)} == {"pending"}
    assert {seen[f"p{i}"] for i in range(MAX_CHAIN + 1, 1001)} == {"error"}
    error = daemon.manager.profile_status("p1000").error
    assert error is not None and error["code"] == "config_invalid"
    assert f"longer than {MAX_CHAIN} hops" in error["message"]
    assert "(p1000 -> p999 -> " in error["message"] and " -> p935)" in error["message"]
    daemon.reload()  # the same config again: every node kept, compared without recursion
    assert states(daemon) == seen


def test_a_long_loop_is_reported_as_a_loop(clean_env: Path, daemon: Daemon) -> None:
    write(clean_env, chain(40, loop=True))
    daemon.reload()
    error = daemon.manager.profile_status("p7").error
    assert error is not None and "loops" in error["message"]


def test_node_chains_of_any_depth_compare_order_and_fingerprint_in_loops(
    clean_env: Path,
) -> None:
    write(clean_env, chain(1))
    config = awsconfig.load()
    user, role = config.managed["p0"], config.managed["p1"]

    def build(depth: int, duration: int = 3600) -> Node:
        assert role.role is not None
        settings = dataclasses.replace(role.role, duration_seconds=duration)
        node = Node.session(user)
        for i in range(depth):
            node = Node.role(dataclasses.replace(role, name=str(i), role=settings), node)
        return node

    deep, again = build(1200), build(1200)
    assert deep == again and hash(deep) == hash(again)
    assert deep != build(1200, duration=900) and deep != build(1199)
    nodes: dict[str, Node] = {}
    current: Node | None = deep
    while current is not None:
        nodes[current.key] = current
        current = current.parent
    order = _parents_first(dict(reversed(list(nodes.items()))))
    assert order[0] == "session:p0" and order[-1] == "role:1199"
    assert fingerprint(deep) == fingerprint(again) != fingerprint(build(1199))


def test_fingerprints_are_unchanged_by_the_loop(clean_env: Path) -> None:
    """Saved sessions survive the upgrade: the loop builds the text the recursion built."""
    import dataclasses
    import hashlib
    import json
    from typing import Any

    def plain(value: Any) -> Any:  # the recursive form, as it was
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            return {f.name: plain(getattr(value, f.name)) for f in fields if f.compare}
        if isinstance(value, dict) or hasattr(value, "items"):
            return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)

    write(
        clean_env,
        chain(3).replace("[profile p2]\n", '[profile p2]\nexternal_id = a"parent":null\n')
        + "[profile s]\ncredd = true\nsso_start_url = https://x\nsso_region = us-east-1\n"
        "sso_account_id = 123456789012\nsso_role_name = A\nregion = eu-west-1\n",
    )
    config = awsconfig.load()
    for name in config.managed:
        node = plan_for(config, name, lambda _p: "totp").target
        endpoints, current = {}, node
        while current is not None:
            endpoints[current.key] = {}
            current = current.parent
        data = {"node": plain(node), "endpoints": endpoints, "environ": {}}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
        assert fingerprint(node) == hashlib.sha256(text.encode()).hexdigest(), name


# -- other values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (f"{ROLE}\nduration_seconds = ²", "not a number"),
        (f"{ROLE}\nduration_seconds = {NINES}", "not a number"),
        ("credd_session_duration = 9999999999999999999999h", "not a duration"),
        ("credd_session_duration = ٣h", "not a duration"),
        (f"role_arn =\n  nested = {ARN}:role/r\nsource_profile = user", "nested section"),
        ("mfa_process =\n  oathtool = x", "nested section"),
        ("region = eu west 1", "not a region"),
        ("sso_session = s\nsso_account_id = 123456789012\nsso_role_name = A", "nested section"),
    ],
)
def test_values_credd_cannot_use_are_config_errors(
    clean_env: Path, daemon: Daemon, lines: str, message: str
) -> None:
    sso = "[sso-session s]\nsso_region = us-east-1\nsso_start_url =\n  x = y\n"
    write(clean_env, USER + sso + f"[profile bad]\ncredd = true\n{lines}\n")
    daemon.reload()
    assert states(daemon) == {"user": "pending", "bad": "error"}
    error = daemon.manager.profile_status("bad").error
    assert error is not None and message in error["message"]


def test_a_file_botocore_cannot_parse_is_named_without_its_text_and_keeps_the_old_config(
    clean_env: Path, daemon: Daemon
) -> None:
    write(clean_env, USER)
    daemon.reload()
    assert states(daemon) == {"user": "pending"}
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzSECRET1"
    write(clean_env, USER, f"[work]\naws_access_key_id = AKIAX\n{secret}\n")
    with pytest.raises(ConfigError) as caught:
        awsconfig.load()
    assert "credentials, line 3" in caught.value.message and secret not in str(caught.value)
    (clean_env / ".aws" / "config").write_text(USER + "[profile two]\ncredd = true\n")
    daemon.reload()
    assert states(daemon) == {"user": "pending"}  # the previous config, kept


def test_reload_survives_an_unexpected_error_and_logs_only_its_type(
    clean_env: Path,
    daemon: Daemon,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, USER)
    daemon.reload()

    def broken(_config: object) -> None:
        raise RuntimeError("text that could hold " + SEED)

    monkeypatch.setattr(daemon.manager, "load", broken)
    with caplog.at_level(logging.ERROR):
        daemon.reload()
    assert "unexpected RuntimeError" in caplog.text and SEED not in caplog.text
    monkeypatch.setattr(awsconfig, "load", lambda _env=None: broken(None))
    daemon.reload()
    assert "unexpected RuntimeError while reading" in caplog.text and SEED not in caplog.text
    assert states(daemon) == {"user": "pending"}
