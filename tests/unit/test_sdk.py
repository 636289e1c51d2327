"""credd.sdk: boto3 and aiobotocore/s3fs sessions fed by the daemon over its socket.

Fast tests run a real socket server over the in-memory backend with a fake clock (botocore's
refresh windows, errors, the event loop never blocked); the integration tests run the real
daemon against the sandbox and gnome-keyring (rotations, seed 000's s3fs workflow, a profile
that needs a person).
"""

from __future__ import annotations

import ast
import asyncio
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pyotp
import pytest
import s3fs
from aiobotocore.credentials import AioRefreshableCredentials

from credd import sdk
from credd.errors import AwsUnreachable, NotReady
from credd.models import Credentials
from credd.sdk import CreddCredentialError
from credd.server.unix import UnixServer
from credd.testing.clock import FakeClock
from credd.testing.memory import MemoryBackend
from tests.fixtures.daemon import DaemonFactory, remember
from tests.fixtures.sandbox import unique_name
from tests.fixtures.transport import START, demo_credentials

ROOT = Path(__file__).resolve().parents[2]
FIRST_EXPIRY = START + timedelta(hours=12)  # demo_credentials() in tests/fixtures/transport.py


def rotated(n: int, expiry: datetime) -> Credentials:
    """What the daemon holds after its n-th rotation."""
    return Credentials(
        access_key_id=f"ASIAROTATED{n:09d}",
        secret_access_key=f"rotated-secret-{n:04d}-" + "x" * 20,
        session_token=f"rotated-token-{n:04d}-" + "y" * 40,
        expiration=expiry,
        account_id="123456789012",
    )


# -- botocore's windows, over a real socket, on a fake clock ----------------------------------


def test_boto3_session_refreshes_in_botocores_windows_across_rotations(
    server: UnixServer, backend: MemoryBackend, clock: FakeClock
) -> None:
    session = sdk.boto3_session("demo", socket=server.address, clock=clock)
    creds = session.get_credentials()
    assert creds.method == "credd"
    assert creds.get_frozen_credentials().access_key == "ASIAFAKE0000000DEMO1"
    expiry = FIRST_EXPIRY
    for n in range(1, 6):
        new = rotated(n, expiry + timedelta(hours=12))
        backend.add_profile("demo", new)  # the daemon rotated ahead of time, as it does
        clock.set(expiry - timedelta(minutes=15, seconds=1))
        before = creds.get_frozen_credentials().access_key
        assert before != new.access_key_id  # outside botocore's 15 min window: not asked
        clock.set(expiry - timedelta(minutes=14, seconds=59))
        assert creds.get_frozen_credentials().access_key == new.access_key_id
        assert creds.get_frozen_credentials().secret_key == new.secret_access_key
        assert sdk.seconds_left(creds, clock) == pytest.approx(12 * 3600 + 899, abs=1)
        assert new.expiration is not None
        expiry = new.expiration
    # the same object is what clients sign with: no static copy anywhere
    assert session.get_credentials() is creds


def test_advisory_failures_keep_the_held_credentials_mandatory_ones_raise(
    server: UnixServer, backend: MemoryBackend, clock: FakeClock
) -> None:
    creds = sdk.boto3_session("demo", socket=server.address, clock=clock).get_credentials()
    held = creds.get_frozen_credentials().access_key
    backend.fail("demo", "credentials", AwsUnreachable("STS unreachable", hint="check network"))
    clock.set(FIRST_EXPIRY - timedelta(minutes=12))  # advisory: botocore keeps what it has
    assert creds.get_frozen_credentials().access_key == held
    clock.set(FIRST_EXPIRY - timedelta(minutes=9))  # mandatory: the error reaches the caller
    with pytest.raises(CreddCredentialError) as info:
        creds.get_frozen_credentials()
    assert info.value.code == "aws_unreachable" and "check network" in str(info.value)
    backend.fail("demo", "credentials", None)
    backend.add_profile("demo", rotated(1, FIRST_EXPIRY + timedelta(hours=1)))
    assert creds.get_frozen_credentials().access_key == "ASIAROTATED000000001"


def test_no_expiry_is_asked_again_hourly_and_expired_keys_are_refused(
    server: UnixServer, backend: MemoryBackend, clock: FakeClock
) -> None:
    backend.add_profile("static", Credentials("AKIALONGTERM00000001", "long-term-secret-0001"))
    creds = sdk.boto3_session("static", socket=server.address, clock=clock).get_credentials()
    assert creds.get_frozen_credentials().token is None
    backend.add_profile("static", Credentials("AKIALONGTERM00000002", "long-term-secret-0002"))
    clock.advance(3600 - 16 * 60)
    assert creds.get_frozen_credentials().access_key == "AKIALONGTERM00000001"
    clock.advance(2 * 60)
    assert creds.get_frozen_credentials().access_key == "AKIALONGTERM00000002"

    backend.add_profile("stale", rotated(9, clock.now() - timedelta(seconds=1)))
    with pytest.raises(CreddCredentialError, match="served expired credentials for stale"):
        sdk.boto3_session("stale", socket=server.address, clock=clock).get_credentials()


def test_not_ready_is_asked_again_then_reported(
    server: UnixServer, backend: MemoryBackend, clock: FakeClock
) -> None:
    backend.fail("demo", "credentials", NotReady("being fetched", hint="try again"))
    session = sdk.boto3_session("demo", socket=server.address, clock=clock)
    with pytest.raises(CreddCredentialError, match="being fetched") as info:
        session.get_credentials()
    assert info.value.code == "not_ready"
    asked = [c for c in backend.calls if c == ("credentials", "demo")]
    assert len(asked) > 10 and sum(clock.slept) >= sdk.NOT_READY_WAIT


def test_aiobotocore_refresh_runs_off_the_event_loop(
    server: UnixServer, backend: MemoryBackend, clock: FakeClock
) -> None:
    session = sdk.aiobotocore_session("demo", socket=server.address, clock=clock)
    new = rotated(1, FIRST_EXPIRY + timedelta(hours=12))

    async def scenario() -> tuple[str, str, int]:
        creds = await session.get_credentials()
        assert isinstance(creds, AioRefreshableCredentials) and creds.method == "credd"
        first = (await creds.get_frozen_credentials()).access_key
        backend.add_profile("demo", new)
        clock.set(FIRST_EXPIRY - timedelta(minutes=9))  # mandatory: the refresh is awaited
        gate = backend.gate = threading.Event()  # the daemon is slow to answer
        calls = len(backend.calls)
        task = asyncio.create_task(creds.get_frozen_credentials())
        spins = 0
        while len(backend.calls) == calls and spins < 2000:  # this loop runs meanwhile
            spins += 1
            await asyncio.sleep(0.005)
        assert len(backend.calls) > calls and not task.done()
        gate.set()
        backend.gate = None
        return first, (await task).access_key, spins

    first, second, spins = asyncio.run(scenario())
    assert (first, second) == ("ASIAFAKE0000000DEMO1", new.access_key_id)
    assert spins > 0  # the loop kept running while the fetch waited on the daemon


# -- errors say what to run --------------------------------------------------------------------


def test_a_profile_that_needs_a_person_names_the_command(
    server: UnixServer, tmp_path: Path
) -> None:
    session = sdk.boto3_session("demo-mfa", socket=server.address)
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as info:
        session.client("sts", region_name="us-east-1")
    err = info.value
    assert isinstance(err, CreddCredentialError) and err.code == "needs_mfa"
    assert "credd mfa demo-mfa" in str(err) and err.hint == "run `credd mfa demo-mfa`"
    assert "'demo-mfa'" in str(err)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - dask/multiprocessing ship errors
    assert type(copy) is CreddCredentialError and str(copy) == str(err) and copy.code == err.code

    fs = s3fs.S3FileSystem(session=sdk.aiobotocore_session("demo-mfa", socket=server.address))
    with pytest.raises(CreddCredentialError, match="credd mfa demo-mfa"):
        fs.ls("some-bucket")

    unknown = sdk.boto3_session("nobody", socket=server.address)
    with pytest.raises(CreddCredentialError, match="credd enable nobody"):
        unknown.client("s3", region_name="us-east-1")


def test_daemon_down_says_how_to_start_it(tmp_path: Path) -> None:
    sock = tmp_path / "nobody-home" / "credd.sock"
    with pytest.raises(CreddCredentialError) as info:
        sdk.boto3_session("work", socket=sock).client("sts", region_name="us-east-1")
    assert info.value.code == "daemon_unavailable"
    assert str(info.value) == (
        "Error when retrieving credentials from credd for profile 'work': "
        f"no credd daemon is listening on {sock}: start it: credd daemon"
    )

    async def first_call() -> None:
        await sdk.aiobotocore_session("work", socket=sock).get_credentials()

    with pytest.raises(CreddCredentialError, match="start it: credd daemon"):
        asyncio.run(first_call())
    with pytest.raises(ValueError, match="which profile"):
        sdk.boto3_session("", socket=sock)


# -- settings from the profile, credentials from credd ----------------------------------------


def test_region_and_endpoints_come_from_the_profile_credentials_from_credd(
    server: UnixServer,
    backend: MemoryBackend,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
) -> None:
    aws = clean_env / ".aws"
    aws.mkdir()
    (aws / "config").write_text(
        "[profile demo]\nregion = eu-west-3\nservices = local\n"
        "aws_access_key_id = AKIASTATICINCONFIG01\naws_secret_access_key = static-in-config\n"
        "[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9\n"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTATICINENVIRON1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "static-in-environment")
    session = sdk.boto3_session("demo", socket=server.address, clock=clock)
    assert session.region_name == "eu-west-3" and session.profile_name == "demo"
    s3 = session.client("s3")
    assert s3.meta.endpoint_url == "http://127.0.0.1:9" and s3.meta.region_name == "eu-west-3"
    assert session.get_credentials().get_frozen_credentials().access_key == "ASIAFAKE0000000DEMO1"

    other = sdk.boto3_session("demo", socket=server.address, region_name="ap-south-1", clock=clock)
    assert other.client("sts").meta.region_name == "ap-south-1"

    aio = sdk.aiobotocore_session("demo", socket=server.address, clock=clock)
    assert aio.get_config_variable("region") == "eu-west-3"
    creds = asyncio.run(aio.get_credentials())
    assert creds.method == "credd"

    backend.add_profile("outside", demo_credentials())  # managed by credd, not in this config
    elsewhere = sdk.boto3_session("outside", socket=server.address, clock=clock)
    assert elsewhere.region_name is None  # botocore's defaults; credd still gives the keys
    assert elsewhere.get_credentials().get_frozen_credentials().access_key.startswith("ASIA")


def test_importing_credd_client_stays_light() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import credd.client\n"
        "assert callable(credd.client.boto3_session)\n"
        "assert callable(credd.client.aiobotocore_session)\n"
        "print(repr(sorted(set(sys.modules) - before)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    added = set(ast.literal_eval(proc.stdout))
    assert added <= {"credd", "credd.client", "_socket"}, added


@pytest.mark.parametrize("doc", ["recipes.md", "python.md"])
def test_the_python_in_the_docs_compiles_and_names_what_exists(doc: str) -> None:
    import credd.client

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / doc).read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        tree = compile(block, doc, "exec", ast.PyCF_ONLY_AST)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "credd.client":
                for alias in node.names:
                    assert hasattr(credd.client, alias.name), (doc, alias.name)


# -- the real daemon, the sandbox, gnome-keyring -----------------------------------------------

ROLE_SECONDS = 20  # sandbox-only: role sessions, rotated by the daemon every ~10 s


def role_setup(daemons: DaemonFactory) -> str:
    """A person's MFA-backed session (TOTP seed in the keyring) and a role assumed from it."""
    sandbox = daemons.sandbox
    sandbox.admin.set_min_duration(ROLE_SECONDS)
    user, device = sandbox.new_user_with_mfa("sdk")
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys("sdk-user", user.access_key_id, user.secret_access_key)
    daemons.store.set_totp_seed("sdk-user", device.seed)
    role = sandbox.admin.create_role(f"sdk-{user.name}", trusted=[user.arn], mfa_required=True)
    daemons.write_config(
        "[profile sdk-user]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        f"[profile sdk-role]\nrole_arn = {role.arn}\nsource_profile = sdk-user\n"
        f"duration_seconds = {ROLE_SECONDS}\ncredd = true\nregion = us-east-1\n"
        "services = sandbox\n"
    )
    return role.arn


def on_loop(fs: Any, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on the event loop s3fs runs its requests on (its own thread)."""
    return asyncio.run_coroutine_threadsafe(make(), fs.loop).result(timeout=60)


class Record:
    """What one long-running program saw: keys used, seconds left on each, failures."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.left: list[float] = []
        self.calls = 0
        self.failures: list[str] = []

    def sessions(self) -> int:
        return len(set(self.keys))

    def note(self, frozen: Any, left: float | None) -> None:
        self.keys.append(frozen.access_key)
        self.left.append(left if left is not None else -1.0)
        remember(frozen.secret_key, frozen.token)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_boto3_and_s3fs_keep_working_across_rotations(daemons: DaemonFactory) -> None:
    """Seed 002's boto3 program and seed 000's notebook (s3fs on aiobotocore), side by side,
    across at least three rotations each: zero failed calls, never an expired key."""
    role_name = role_setup(daemons).rsplit("/", 1)[-1]
    d = daemons.start(CREDD_MIN_SESSION_SECONDS=str(ROLE_SECONDS))
    d.wait_state("sdk-role", "fresh")
    sock = d.socket
    # botocore's windows (15/10 min) are longer than a 20 s sandbox session; scaled to it,
    # a refresh happens only near expiry, as it does with real sessions
    advisory, mandatory = 7, 4

    boto = sdk.boto3_session(
        "sdk-role", socket=sock, advisory_timeout=advisory, mandatory_timeout=mandatory
    )
    assert boto.region_name == "us-east-1"
    sts, s3 = boto.client("sts"), boto.client("s3")
    bucket = unique_name("sdk")
    s3.create_bucket(Bucket=bucket)
    for name in ("scene-b1.tif", "scene-b2.tif", "notes.txt"):
        s3.put_object(Bucket=bucket, Key=f"folder/{name}", Body=f"pixels of {name}".encode())

    # seed 000: the notebook's own lines, with credd's session instead of a static profile
    session = sdk.aiobotocore_session(
        "sdk-role", socket=sock, advisory_timeout=advisory, mandatory_timeout=mandatory
    )
    fs = s3fs.S3FileSystem(session=session)
    all_files = fs.ls(f"s3://{bucket}/folder/")
    tif_files = [file for file in all_files if file.endswith(".tif")]
    assert tif_files == [f"{bucket}/folder/scene-b1.tif", f"{bucket}/folder/scene-b2.tif"]
    with fs.open(tif_files[0], "rb") as f:
        assert f.read() == b"pixels of scene-b1.tif"
    with fs.open(f"{bucket}/out/stacked.nc", "wb") as f:
        f.write(b"netcdf bytes")
    assert fs.cat_file(f"{bucket}/out/stacked.nc") == b"netcdf bytes"
    aio_creds = on_loop(fs, session.get_credentials)
    assert isinstance(aio_creds, AioRefreshableCredentials)

    stop = threading.Event()
    boto_seen, fs_seen = Record(), Record()
    creds = boto.get_credentials()

    def boto_program() -> None:  # seed 002: one boto3 session, calls forever
        n = 0
        while not stop.is_set():
            n += 1
            try:
                boto_seen.note(creds.get_frozen_credentials(), sdk.seconds_left(creds))
                who = sts.get_caller_identity()
                assert f":assumed-role/{role_name}/" in who["Arn"]
                s3.put_object(Bucket=bucket, Key=f"tick/{n:05d}", Body=b"tick")
                boto_seen.calls += 1
            except Exception as exc:  # counted, shown at the end
                boto_seen.failures.append(f"{type(exc).__name__}: {exc}")
            stop.wait(0.3)

    thread = threading.Thread(target=boto_program, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            try:
                frozen = on_loop(fs, aio_creds.get_frozen_credentials)
                fs_seen.note(frozen, sdk.seconds_left(aio_creds))
                listed = fs.ls(f"{bucket}/folder/", refresh=True)
                assert len(listed) == 3
                with fs.open(tif_files[1], "rb") as f:
                    assert f.read() == b"pixels of scene-b2.tif"
                fs.pipe_file(f"{bucket}/out/{n:05d}.nc", b"more")
                fs_seen.calls += 1
            except Exception as exc:
                fs_seen.failures.append(f"{type(exc).__name__}: {exc}")
            if boto_seen.sessions() >= 4 and fs_seen.sessions() >= 4:
                break
            time.sleep(0.3)  # a program's pace between calls, not a test of timing
    finally:
        stop.set()
        thread.join(timeout=30)

    assert boto_seen.failures == [] and fs_seen.failures == []
    assert boto_seen.sessions() >= 4 and fs_seen.sessions() >= 4  # >= 3 rotations each
    assert min(boto_seen.left) > 0 and min(fs_seen.left) > 0  # never an expired key
    assert boto_seen.calls > 20 and fs_seen.calls > 10
    assert set(fs_seen.keys) & set(boto_seen.keys)  # the same daemon-held sessions
    # the sandbox agrees: every call it saw from these programs succeeded
    stats = daemons.sandbox.admin.call_stats()["actions"]
    for action in ("GetCallerIdentity", "s3:GET", "s3:PUT"):
        assert stats[action]["error"] == 0 and stats[action]["ok"] > 0, (action, stats[action])
    assert len(fs.ls(f"{bucket}/out/", refresh=True)) == fs_seen.calls + 1
    # one MFA code for the whole run: the roles came from one MFA session
    assert daemons.sandbox.admin.calls("GetSessionToken") == 1


@pytest.mark.integration
def test_a_session_made_while_a_person_is_needed_works_once_they_act(
    daemons: DaemonFactory,
) -> None:
    user, device = daemons.sandbox.new_user_with_mfa("desk")
    remember(user.secret_access_key, device.seed)
    daemons.store.set_long_term_keys("desk", user.access_key_id, user.secret_access_key)
    daemons.write_config(
        "[profile desk]\nregion = us-east-1\nservices = sandbox\ncredd = true\n"
        "credd_mfa_source = person\n"
    )
    d = daemons.start()
    d.wait_state("desk", "needs_mfa")
    session = sdk.boto3_session("desk", socket=d.socket)  # made before anyone typed a code
    with pytest.raises(CreddCredentialError, match="credd mfa desk") as info:
        session.client("sts")
    assert info.value.code == "needs_mfa"

    done = d.run("mfa", "desk", pyotp.TOTP(device.seed).now())
    assert done.returncode == 0, done.stderr
    who = session.client("sts").get_caller_identity()  # same session, no restart
    assert who["Arn"] == user.arn
    assert session.get_credentials().method == "credd"
