"""Generated AWS files through the daemon's load path: never a death, never an unhandled error.

Each generated pair of files (random sections, keys and values, quotes, backslashes, unicode,
nested sub-sections, duplicate sections and keys, bytes that are not UTF-8, deep and looping
role chains, files of thousands of sections) goes through ``Daemon.reload`` -- botocore's
parse, credd's validation, the planner, ``Manager.load`` -- then ``status``. It must hold:

- nothing escapes, and nothing unexpected is logged (the last-resort guard never fires);
- a file botocore can parse: every profile with ``credd = true`` is in ``status``, broken
  ones as ``error`` with a message, and the well-formed sentinel profile is never harmed;
- a file botocore cannot parse: the previous config stays, whole.

A bounded count runs in ``make test``; ``make soak`` (``CREDD_SOAK=1``) runs 1,000 in-process
and 100 through SIGHUPs of the real daemon. Generation is derandomized: the same cases every run.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from credd.aws import config as awsconfig
from credd.client import Client
from credd.daemon.main import Daemon
from tests.fixtures.daemon import DaemonFactory
from tests.fixtures.keyring import KeyringEnv

SOAK = os.environ.get("CREDD_SOAK") == "1"
IN_PROCESS = 1000 if SOAK else 40  # ~1 s each on a loaded machine (keyring look-ups)
THROUGH_SIGHUP = 100 if SOAK else 5
#: sections in a "huge" file: each managed profile costs a keyring look-up in ``status``
HUGE = [2000, 5000] if SOAK else [100]

ARN = "arn:aws:iam::123456789012"
SENTINEL = "credd-sentinel"
SENTINEL_SECTION = (
    f"[profile {SENTINEL}]\ncredd = true\nmfa_serial = {ARN}:mfa/sentinel\n"
    "credd_file_profile = off\n"
)
NAMES = ["a", "b", "work", "default", "role", "sso", "p0", "ü", "x y", "", " "]
KEYS = [*awsconfig.READ_KEYS, "sso_registration_scopes", "services", "endpoint_url", "s3", "x"]
GOOD = [
    "true", "yes", "false", "totp", "process", "person", "12h", "90m", "3600", "900", "43200",
    "7200", "off", "work-credd", f"{ARN}:mfa/a", "GAHT12345678", "echo 123456", f"{ARN}:role/r",
    "Environment", "Ec2InstanceMetadata", "us-east-1", "123456789012", "Admin", "a", "b", "work",
    "https://x.awsapps.com/start", "sso:account:access", "AKIAEXAMPLE000000001", "s" * 40,
]  # fmt: skip
JUNK = [
    "'", '"', "Bob's", "\\", "'\\", "a\x00b", "²", "٣٦٠٠", "1e3", "-5", "9" * 5000, "", "%(x)s",
    "$HOME", "[", "=", ";", "#", "12h12h", "0", "\u202e", "\ufeff", "🙂", "x" * 300, "arn:",
    f"{ARN}:role/", "1h 30m", "None",
]  # fmt: skip

values = st.one_of(
    st.sampled_from(GOOD), st.sampled_from(JUNK), st.text(max_size=30), st.sampled_from(NAMES)
)
names = st.one_of(st.sampled_from(NAMES), st.text(max_size=12))


@st.composite
def section(draw: st.DrawFn) -> str:
    name = draw(names)
    header = draw(
        st.sampled_from(
            [f"[profile {name}]", "[default]", f"[{name}]", f"[sso-session {name}]",
             f"[services {name}]", f"[{name}", name]
        )
    )  # fmt: skip
    lines = [header]
    if draw(st.booleans()):
        lines.append("credd = " + draw(st.sampled_from(["true", "true", "yes", "false", "maybe"])))
    for _ in range(draw(st.integers(0, 8))):
        key = draw(st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8)))
        if draw(st.integers(0, 9)) == 0:  # an indented sub-section where a value belongs
            lines += [f"{key} =", f"  {draw(st.sampled_from(KEYS))} = {draw(values)}"]
        else:
            lines.append(f"{key} = {draw(values)}")
    return "\n".join(lines) + "\n"


@st.composite
def role_chain(draw: st.DrawFn) -> str:
    """``c0`` (keys) <- ``c1`` <- ... : deep, looping, branching, some hops broken."""
    hops = draw(st.sampled_from([1, 2, 63, 64, 65, 66, 200, 1000]))
    loop = draw(st.booleans())
    out = [f"[profile c0]\ncredd = true\nmfa_serial = {ARN}:mfa/c0\n"]
    if loop:
        out.append(f"role_arn = {ARN}:role/r0\nsource_profile = c{hops}\n")
    for i in range(1, hops + 1):
        duration = draw(st.sampled_from(["", "", "", "duration_seconds = 7200\n"]))
        out.append(
            f"[profile c{i}]\ncredd = true\nrole_arn = {ARN}:role/r{i}\n"
            f"source_profile = c{i - 1}\n{duration}"
        )
    return "".join(out)


@dataclass(frozen=True)
class Files:
    config: bytes
    credentials: bytes


@st.composite
def aws_files(draw: st.DrawFn) -> Files:
    kind = draw(st.sampled_from(["random"] * 8 + ["chain", "chain", "huge", "bytes"]))
    if kind == "chain":
        body = draw(role_chain()) + draw(section())
    elif kind == "huge":  # thousands of sections, or one enormous value
        count = draw(st.sampled_from(HUGE))
        body = "".join(
            f"[profile h{i}]\ncredd = true\nmfa_process = echo {i}\ncredd_file_profile = off\n"
            for i in range(count)
        )
        body += f"[profile big]\ncredd = true\nmfa_process = {'x' * 20_000}\n"
    else:
        body = "".join(draw(st.lists(section(), max_size=8)))
    config = (body + SENTINEL_SECTION).encode("utf-8")
    if kind == "bytes":
        config = draw(st.sampled_from([b"\xff\xfe", b"\x80", b"\xc3("])) + config
    creds = "".join(draw(st.lists(section(), max_size=3))).encode("utf-8")
    return Files(config, creds)


def in_file(config: str, credentials: str = "") -> Files:
    return Files((config + SENTINEL_SECTION).encode(), credentials.encode())


NINES = "9" * 5000
CHAIN_1000 = "[profile c0]\ncredd = true\n" + "".join(
    f"[profile c{i}]\ncredd = true\nsource_profile = c{i - 1}\nrole_arn = {ARN}:role/r\n"
    for i in range(1, 1001)
)

#: The minimal cases of every class of crash the fuzz found (each failed before its fix).
MINIMAL = [
    in_file("[profile bob]\ncredd = true\nmfa_process = echo Bob's\n"),
    in_file("[profile bob]\ncredd = true\nmfa_process = ''\n"),
    in_file(f"[profile r]\ncredd = true\nrole_arn = {ARN}:role/r\nduration_seconds = ²\n"),
    in_file(f"[profile r]\ncredd = true\nrole_arn = {ARN}:role/r\nduration_seconds = {NINES}\n"),
    in_file("[profile s]\ncredd = true\ncredd_session_duration = 99999999999999999999h\n"),
    in_file("[profile s]\ncredd = true\nregion =\n  x = y\n"),
    in_file("[profile s]\ncredd =\n  x = y\n"),
    in_file(
        "[sso-session s]\nsso_region = us-east-1\nsso_start_url =\n  x = y\n"
        "[profile s]\ncredd = true\nsso_session = s\nsso_account_id = 123456789012\n"
        "sso_role_name = A\n"
    ),
    in_file(CHAIN_1000),
    in_file("[profile a]\ncredd = true\n[profile a]\nregion = x\n"),  # duplicate: botocore refuses
    Files(b"\xff" + SENTINEL_SECTION.encode(), b""),
]


def fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=count,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.large_base_example,
        ],
    )


def write(home: Path, files: Files) -> None:
    aws = home / ".aws"
    aws.mkdir(mode=0o700, exist_ok=True)
    (aws / "config").write_bytes(files.config)
    (aws / "credentials").write_bytes(files.credentials)


def expected(home: Path) -> set[str] | None:
    """The profiles ``status`` must show for the files as they are; ``None``: unparseable.

    Read with botocore's own file loader (what ``Session.full_config`` does, without building
    a session), independently of credd's reading.
    """
    import botocore.exceptions
    from botocore.configloader import load_config, raw_config_parse

    aws = home / ".aws"
    try:
        profiles = dict(load_config(str(aws / "config"))["profiles"])
        for name, values in raw_config_parse(str(aws / "credentials")).items():
            profiles[name] = {**profiles.get(name, {}), **values}
    except botocore.exceptions.BotoCoreError:
        return None
    return {n for n, raw in profiles.items() if "credd" in raw and _truthy(raw["credd"])}


def _truthy(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "credd =" and an indented block: opted in, broken
    try:
        return awsconfig.parse_bool(value[:100])
    except ValueError:
        return True  # "credd = maybe": opted in, broken


def summary(profiles: list[dict[str, Any]]) -> dict[str, str]:
    """Each profile in ``status``: ``config`` (a config error, with a message) or ``ok``."""
    out = {}
    for p in profiles:
        error = p.get("error") or {}
        bad = error.get("code") in {"config_invalid", "profile_not_found"}
        assert not bad or (p["state"] == "error" and error["message"])
        out[p["name"]] = "config" if bad else "ok"
    return out


def check_status(statuses: dict[str, str], wanted: set[str] | None, before: dict[str, str]) -> None:
    if wanted is None:  # botocore cannot parse it: the previous config is kept, whole
        assert statuses == before
        return
    assert set(statuses) == wanted  # every opted-in profile accounted for
    assert statuses[SENTINEL] == "ok"  # and the well-formed one untouched by the others


@pytest.mark.soak
@pytest.mark.timeout(3600 if SOAK else 600)
def test_generated_configs_through_load_plan_and_reload(
    clean_env: Path, keyring_env: KeyringEnv, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(clean_env / "run" / "credd.sock", secrets=keyring_env.store(allow_prompt=False))
    seen = {"runs": 0, "unparseable": 0, "broken": 0}

    @fuzz_settings(IN_PROCESS)
    @given(aws_files())
    def one(files: Files) -> None:
        now = daemon.clock.now()
        before = summary([s.to_json(now) for s in daemon.manager.status()])
        write(clean_env, files)
        wanted = expected(clean_env)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="credd"):
            daemon.reload()
            statuses = summary([s.to_json(now) for s in daemon.manager.status()])
        assert "unexpected" not in caplog.text, caplog.text
        check_status(statuses, wanted, before)
        seen["runs"] += 1
        seen["unparseable"] += wanted is None
        seen["broken"] += sum(state == "config" for state in statuses.values())

    for case in MINIMAL:
        one = example(case)(one)
    one()
    assert seen["runs"] >= IN_PROCESS  # the examples ran, all of them
    assert seen["unparseable"] and seen["broken"]  # both kinds of bad input were generated


@pytest.mark.soak
@pytest.mark.integration
@pytest.mark.timeout(3600 if SOAK else 300)
def test_generated_configs_through_sighup_of_the_real_daemon(daemons: DaemonFactory) -> None:
    write(daemons.home, in_file(""))
    d = daemons.start()
    assert d.proc is not None
    client = Client(d.socket, timeout=10)
    done = {"reloads": 0}

    def reloads() -> int:
        text = d.log.read_text(errors="replace")
        return text.count("config reloaded") + text.count("config not reloaded")

    @fuzz_settings(THROUGH_SIGHUP)
    @given(aws_files().filter(lambda f: b"[profile h0]" not in f.config))  # not 5,000 refreshes
    def one(files: Files) -> None:
        before = summary(client.status()["profiles"])
        count = reloads()
        write(daemons.home, files)
        wanted = expected(daemons.home)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 300
        while reloads() == count:
            assert d.proc.poll() is None, "the daemon died on a SIGHUP"
            assert time.monotonic() < deadline, "no reload logged"
            time.sleep(0.05)
        assert d.proc.poll() is None, "the daemon died on a SIGHUP"
        statuses = summary(client.status()["profiles"])
        check_status(statuses, wanted, before)
        done["reloads"] += 1

    # The 1,000-hop chain with no file sections: removing 1,000 sections from the credentials
    # file on the next reload is one locked rewrite each (minutes on a loaded machine).
    quiet_chain = in_file(
        CHAIN_1000.replace("credd = true\n", "credd = true\ncredd_file_profile = off\n")
    )
    for case in [MINIMAL[0], quiet_chain, *MINIMAL[-2:]]:
        one = example(case)(one)
    one()
    assert done["reloads"] >= THROUGH_SIGHUP
    assert "unexpected" not in d.log.read_text(errors="replace")
