"""``credd env`` and ``credd exec`` as subprocesses, against a real unix-socket server and a real
loopback endpoint over the in-memory backend; the shells and botocore that read the output are
real too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from credd.server.api import Api
from credd.server.container import ContainerApi, LoopbackServer
from credd.server.endpoint import ensure_token
from credd.server.imds_endpoints import ImdsEndpoints
from credd.server.unix import UnixServer
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.transport import ServerFactory, demo_credentials

LIVE_KEY = "ASIAFAKE0000000DEMO1"
STATIC = {
    "AWS_ACCESS_KEY_ID": "AKIASTATICSTATIC0001",
    "AWS_SECRET_ACCESS_KEY": "static-secret-static-secret-static-secret",
    "AWS_SESSION_TOKEN": "static-token",
    "AWS_SECURITY_TOKEN": "static-token",
    "AWS_PROFILE": "someone",
    "AWS_DEFAULT_PROFILE": "someone",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/nope",
    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/x",
}
BOTO_CHECK = (
    "import boto3; c = boto3.Session().get_credentials(); "
    "print(c.method, c.get_frozen_credentials().access_key)"
)


class Setup:
    def __init__(self, server: UnixServer, endpoint: LoopbackServer, token_file: Path) -> None:
        self.server = server
        self.endpoint = endpoint
        self.token_file = token_file

    def credd(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ) if env is None else env
        full["CREDD_SOCKET"] = str(self.server.address)
        return subprocess.run(
            [sys.executable, "-m", "credd.cli", *args],
            env=full, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def setup(
    serve: ServerFactory, backend: MemoryBackend, tmp_path: Path, clean_env: Path
) -> Iterator[Setup]:
    live = datetime.now(timezone.utc) + timedelta(hours=12)
    backend.add_profile("work", replace(demo_credentials(), expiration=live))
    backend.add_profile("odd+name=1,a@b", replace(demo_credentials(), expiration=live))
    # a path a shell must quote: spaces, quotes, a dollar sign
    token_file = tmp_path / 'it\'s a "dir" $HOME' / "endpoint-token"
    endpoint = LoopbackServer(ContainerApi(backend, ensure_token(token_file)), port=0)
    endpoint.start()
    backend.info_extra["endpoint"] = {
        "state": "serving", "url": endpoint.url, "port": endpoint.port,
        "token_file": str(token_file), "error": None, "note": None,
    }  # fmt: skip
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile work]\nregion = eu-west-3\n")
    yield Setup(serve(), endpoint, token_file)
    endpoint.stop(2.0)


def test_sh_output_is_quoted_for_a_real_sh(setup: Setup) -> None:
    out = setup.credd("env", "work")
    assert out.returncode == 0, out.stderr
    env = dict(os.environ) | STATIC | {"CREDD_SOCKET": str(setup.server.address)}
    script = (
        f'eval "$({sys.executable} -m credd.cli env work)" || exit 9\n'
        'printf "%s\\n" "$AWS_CONTAINER_AUTHORIZATION_TOKEN" "$AWS_REGION" '
        '"$AWS_DEFAULT_REGION" "$AWS_CONTAINER_CREDENTIALS_FULL_URI" "$CREDD_PROFILE"\n'
        'env | grep -E "^(AWS_ACCESS|AWS_SECRET|AWS_SESSION|AWS_SECURITY|AWS_PROFILE|'
        'AWS_DEFAULT_PROFILE|AWS_ROLE|AWS_WEB|AWS_CONTAINER_CREDENTIALS_RELATIVE)" && exit 8\n'
        "exit 0\n"
    )
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        setup.token_file.read_text(),
        "eu-west-3",
        "eu-west-3",
        f"http://127.0.0.1:{setup.endpoint.port}/v1/container-credentials/work",
        "work",
    ]


def test_json_and_fish_forms(setup: Setup) -> None:
    out = setup.credd("env", "odd+name=1,a@b", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {"set", "unset"}
    assert data["set"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith(
        "/v1/container-credentials/odd+name=1,a@b"  # all legal in a path segment
    )
    boto = setup.credd("exec", "odd+name=1,a@b", "--", sys.executable, "-c", BOTO_CHECK)
    assert boto.stdout.split() == ["container-role", LIVE_KEY], boto.stderr
    assert data["set"]["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == setup.token_file.read_text()
    assert "AWS_REGION" not in data["set"]  # the profile has none
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} <= set(data["unset"])  # fmt: skip
    fish = setup.credd("env", "work", "--format", "fish")
    assert fish.returncode == 0, fish.stderr
    assert fish.stdout.startswith("set -e AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY ")
    assert "set -gx AWS_REGION 'eu-west-3';" in fish.stdout
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed: its syntax was checked by text only")
    env = dict(os.environ) | STATIC | {"CREDD_SOCKET": str(setup.server.address)}
    script = (
        f"{sys.executable} -m credd.cli env work --format fish | source; or exit 9\n"
        "echo $AWS_CONTAINER_AUTHORIZATION_TOKEN; echo $AWS_REGION\n"
        "set -q AWS_ACCESS_KEY_ID; and exit 8; set -q AWS_PROFILE; and exit 7; exit 0\n"
    )
    done = subprocess.run(
        ["fish", "--no-config", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [setup.token_file.read_text(), "eu-west-3"]


def test_exec_passes_the_exit_code_and_signals_and_no_static_keys(setup: Setup) -> None:
    env = dict(os.environ) | STATIC
    assert setup.credd("exec", "work", "--", "sh", "-c", "exit 7", env=env).returncode == 7
    killed = setup.credd("exec", "work", "--", "sh", "-c", "kill -TERM $$", env=env)
    assert killed.returncode == -15  # the command replaced credd: its death is ours
    shown = setup.credd("exec", "work", "--", "env", env=env)
    assert shown.returncode == 0
    child = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    assert not set(STATIC) & set(child)
    assert STATIC["AWS_SECRET_ACCESS_KEY"] not in shown.stdout
    # only the token variable: the JS SDK v3 warns on every fetch when both are set
    assert child["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == setup.token_file.read_text()
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" not in child
    assert child["CREDD_PROFILE"] == "work"
    # botocore in the child takes the endpoint's credentials
    boto = setup.credd("exec", "work", "--", sys.executable, "-c", BOTO_CHECK, env=env)
    assert boto.returncode == 0, boto.stderr
    assert boto.stdout.split() == ["container-role", LIVE_KEY]
    missing = setup.credd("exec", "work", "--", "no-such-command-here", env=env)
    assert missing.returncode == 127 and "not found" in missing.stderr
    assert setup.credd("exec", "work", env=env).returncode == 2


def test_default_static_keys_are_hidden_and_config_sources_refused(
    setup: Setup, clean_env: Path
) -> None:
    creds = clean_env / ".aws" / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = AKIADEFAULTDEFAULT01\n"
        "aws_secret_access_key = default-secret-default-secret-default-se\n"
    )
    boto = setup.credd("exec", "work", "--", sys.executable, "-c", BOTO_CHECK)
    assert boto.returncode == 0, boto.stderr
    assert boto.stdout.split() == ["container-role", LIVE_KEY]
    assert "[default]" in boto.stderr and "empty credentials file" in boto.stderr
    out = json.loads(setup.credd("env", "work", "--format", "json").stdout)
    empty = Path(out["set"]["AWS_SHARED_CREDENTIALS_FILE"])
    assert empty.read_text() == "" and oct(empty.stat().st_mode & 0o777) == "0o600"
    assert creds.read_text().startswith("[default]")  # the person's file is never changed
    # without credd's help the same program runs as [default]: what hiding prevents
    plain = subprocess.run(
        [sys.executable, "-c", BOTO_CHECK], env=dict(os.environ) | {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": out["set"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(setup.token_file),
        }, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert plain.stdout.split() == ["shared-credentials-file", "AKIADEFAULTDEFAULT01"]

    (clean_env / ".aws" / "config").write_text(
        "[default]\ncredential_process = something\n[profile work]\nregion = eu-west-3\n"
    )
    refused = setup.credd("exec", "work", "--", "sh", "-c", "echo ran")
    assert refused.returncode == 3 and "ran" not in refused.stdout
    assert "credential_process" in refused.stderr and "named profile" in refused.stderr


def test_clear_errors_when_the_profile_daemon_or_endpoint_is_missing(
    setup: Setup, backend: MemoryBackend, tmp_path: Path
) -> None:
    unknown = setup.credd("exec", "nobody", "--", "sh", "-c", "echo ran")
    assert unknown.returncode == 3 and "ran" not in unknown.stdout
    assert "credd enable nobody" in unknown.stderr
    needs = setup.credd("env", "demo-mfa")
    assert needs.returncode == 0 and "needs_mfa" in needs.stderr  # a note, not a failure
    env = dict(os.environ) | {"CREDD_SOCKET": str(tmp_path / "none.sock")}
    down = subprocess.run(
        [sys.executable, "-m", "credd.cli", "env", "work"], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert down.returncode == 5 and "credd daemon" in down.stderr
    backend.info_extra["endpoint"] = {"state": "off", "url": None, "token_file": None}
    off = setup.credd("env", "work")
    assert off.returncode == 5 and "turned off" in off.stderr and off.stdout == ""
    backend.info_extra["endpoint"] = {
        "state": "error", "url": None, "token_file": None,
        "error": {"code": "port_in_use", "message": "port 4 on 127.0.0.1 is already in use"},
    }  # fmt: skip
    taken = setup.credd("exec", "work", "--", "true")
    assert taken.returncode == 5 and "already in use" in taken.stderr


# -- the IMDS route (credd env --imds / credd exec --imds) -----------------------------------

IMDS_CHECK = (
    "import boto3, os; s = boto3.Session(); c = s.get_credentials(); "
    "print(c.method, c.get_frozen_credentials().access_key, s.region_name)"
)


@pytest.fixture
def imds_setup(
    backend: MemoryBackend, clock: FakeClock, tmp_path: Path, clean_env: Path
) -> Iterator[tuple[Setup, ImdsEndpoints]]:
    live = datetime.now(timezone.utc) + timedelta(hours=12)
    backend.add_profile("work", replace(demo_credentials(), expiration=live))
    backend.add_profile("lab", replace(demo_credentials(), expiration=live))
    endpoints = ImdsEndpoints(backend, clock, info=backend.info_extra)
    server = UnixServer(tmp_path / "sock" / "credd.sock", Api(backend, clock, imds=endpoints))
    server.start()
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text("[profile work]\nregion = eu-west-3\n")
    yield Setup(server, None, tmp_path / "no-token"), endpoints  # type: ignore[arg-type]
    endpoints.stop_all()
    server.stop(2.0)


def test_env_imds_points_every_sdk_family_at_a_persistent_endpoint(
    imds_setup: tuple[Setup, ImdsEndpoints],
) -> None:
    setup, endpoints = imds_setup
    out = setup.credd("env", "--imds", "work", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    url = endpoints.url("work")
    assert url is not None and url.startswith("http://127.0.0.1:")
    for name in ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "CPL_AWS_EC2_API_ROOT_URL",
                 "AWS_METADATA_ENDPOINT"):  # fmt: skip
        assert data["set"][name].rstrip("/") == url
    assert data["set"]["AWS_EC2_METADATA_DISABLED"] == "false"
    assert "127.0.0.1" in data["set"]["NO_PROXY"].split(",")
    assert {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "AWS_PROFILE", "AWS_ACCESS_KEY_ID"} <= set(data["unset"])  # fmt: skip
    assert "credd_imds = PORT" in out.stderr  # how to make it survive a restart
    again = json.loads(setup.credd("env", "--imds", "work", "--format", "json").stdout)
    assert again["set"]["AWS_METADATA_ENDPOINT"] == url  # reused, not a second one


def test_exec_imds_wins_over_static_keys_and_the_container_route_and_ends_with_the_command(
    imds_setup: tuple[Setup, ImdsEndpoints],
) -> None:
    setup, endpoints = imds_setup
    env = dict(os.environ) | STATIC | {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/v1/container-credentials/x",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "elsewhere",
    }  # fmt: skip
    boto = setup.credd("exec", "--imds", "work", "--", sys.executable, "-c", IMDS_CHECK, env=env)
    assert boto.returncode == 0, boto.stderr
    assert boto.stdout.split() == ["iam-role", LIVE_KEY, "eu-west-3"]
    # the endpoint was leased to the command (same pid as credd exec): it ends with it
    assert endpoints.url("work") is not None
    endpoints.reap()
    assert endpoints.url("work") is None
    assert setup.credd("exec", "--imds", "lab", "--", "sh", "-c", "exit 7").returncode == 7
    endpoints.reap()
    assert endpoints.url("lab") is None


def test_not_managed_refusal_names_the_real_pid_without_nested_parentheses(
    imds_setup: tuple[Setup, ImdsEndpoints],
) -> None:
    setup, _ = imds_setup
    for args in (("exec", "nobody", "--", "true"), ("exec", "--imds", "nobody", "--", "true")):
        out = setup.credd(*args)
        assert out.returncode == 3, out.stderr
        assert "<pid>" not in out.stderr and f"kill -HUP {os.getpid()}" in out.stderr
        assert out.stderr.count("(") <= 1, out.stderr
