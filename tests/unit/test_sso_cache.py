"""The SSO token cache shared with the AWS CLI: file names, fields, formats, locking, races,
and when to refresh. Interop is checked against botocore's own loader/writer and the AWS CLI
v2's own code (the Debian package at /usr/lib/python3/dist-packages/awscli)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.clock import UTC
from credd.errors import LoginRequired, SsoCacheError
from credd.sso.cache import Registration, SsoToken, TokenCache, parse_when
from credd.sso.settings import SsoTarget, resolve_profile, resolve_session
from credd.sso.tokens import TokenStore, refresh_at, refresh_due
from credd.testing.clock import FakeClock

START = "https://d-1234567890.awsapps.com/start"
T0 = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
SESSION = SsoTarget(START, "eu-west-1", "dev", ("sso:account:access",))
LEGACY = SsoTarget(START, "eu-west-1", None)
CLI_V2 = Path("/usr/lib/python3/dist-packages/awscli")


def token(expires: datetime, *, refresh: str | None = "rt-1", **extra: Any) -> SsoToken:
    return SsoToken(
        access_token="at-" + expires.strftime("%H%M%S"),
        expires_at=expires,
        start_url=START,
        region="eu-west-1",
        client_id="cid" if refresh else None,
        client_secret="csecret" if refresh else None,
        registration_expires_at=T0 + timedelta(days=90) if refresh else None,
        refresh_token=refresh,
        raw=extra,
    )


@pytest.fixture
def cache_dir(clean_env: Path) -> Path:
    return clean_env / ".aws" / "sso" / "cache"


@pytest.fixture
def cache(cache_dir: Path) -> TokenCache:
    return TokenCache(cache_dir, clock=FakeClock(T0), lock_timeout=2)


def botocore_cache(directory: Path) -> Any:
    from botocore.tokens import _sso_json_dumps
    from botocore.utils import JSONFileCache

    return JSONFileCache(str(directory), dumps_func=_sso_json_dumps)


# -- names and fields -------------------------------------------------------------------------


def test_file_names_are_botocores(cache: TokenCache, cache_dir: Path) -> None:
    from botocore.utils import SSOTokenLoader

    loader = SSOTokenLoader()
    assert cache.path(SESSION) == cache_dir / f"{loader._generate_cache_key(START, 'dev')}.json"
    assert cache.path(LEGACY) == cache_dir / f"{loader._generate_cache_key(START, None)}.json"
    assert cache.path(SESSION) != cache.path(LEGACY)


@pytest.mark.skipif(not CLI_V2.is_dir(), reason="the AWS CLI v2 package is not installed")
@pytest.mark.parametrize("target", [SESSION, LEGACY, SsoTarget(START, "us-east-1", "x", None)])
def test_token_and_registration_keys_match_the_aws_cli_v2(target: SsoTarget) -> None:
    code = (
        "import sys, json, awscli\n"
        "from botocore.utils import SSOTokenFetcher\n"
        "a = json.loads(sys.argv[1])\n"
        "f = SSOTokenFetcher(sso_region=a['region'], client_creator=None)\n"
        "print(f._token_cache_key(a['url'], a['name']))\n"
        "print(f._registration_cache_key(a['url'], a['name'], a['scopes']))\n"
    )
    args = {
        "region": target.region,
        "url": target.start_url,
        "name": target.session_name,
        "scopes": list(target.scopes) if target.scopes is not None else None,
    }
    out = subprocess.run(
        ["/usr/bin/python3", "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"]},
    ).stdout.split()
    assert out == [target.cache_key, target.registration_key]


def test_written_by_credd_read_by_botocore(cache: TokenCache, cache_dir: Path) -> None:
    from botocore.utils import SSOTokenLoader

    cache.write(SESSION, token(T0 + timedelta(hours=1)))
    loaded = SSOTokenLoader(cache=botocore_cache(cache_dir))(START, session_name="dev")
    assert loaded["accessToken"] == "at-170000"
    assert loaded["expiresAt"] == "2026-11-21T17:00:00Z"
    assert loaded["registrationExpiresAt"] == "2027-02-19T16:00:00Z"
    assert {k for k in loaded} == {
        "startUrl",
        "region",
        "accessToken",
        "expiresAt",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "refreshToken",
    }


def test_expiry_format_is_the_one_botocore_and_the_cli_write() -> None:
    from botocore.tokens import _sso_json_dumps

    when = T0 + timedelta(hours=1, microseconds=5)
    botocore_text = json.loads(_sso_json_dumps({"expiresAt": when}))["expiresAt"]
    assert token(when).to_json()["expiresAt"] == botocore_text == "2026-11-21T17:00:00Z"


def test_written_by_botocore_read_by_credd(cache: TokenCache, cache_dir: Path) -> None:
    from botocore.utils import SSOTokenLoader

    loader = SSOTokenLoader(cache=botocore_cache(cache_dir))
    entry = {
        "startUrl": START,
        "region": "eu-west-1",
        "accessToken": "cli-access",
        "expiresAt": T0 + timedelta(hours=1),
        "clientId": "cid",
        "clientSecret": "csecret",
        "registrationExpiresAt": T0 + timedelta(days=90),
        "refreshToken": "cli-refresh",
    }
    loader.save_token(START, entry, session_name="dev")
    loader.save_token(START, dict(entry, accessToken="legacy-access"))
    got = cache.read(SESSION)
    assert got is not None and got.access_token == "cli-access"
    assert got.expires_at == T0 + timedelta(hours=1)
    assert got.refresh_token == "cli-refresh" and got.has_refresh
    assert got.registration_expires_at == T0 + timedelta(days=90)
    legacy = cache.read(LEGACY)
    assert legacy is not None and legacy.access_token == "legacy-access"


def test_botocore_token_provider_uses_the_token_credd_wrote(
    cache: TokenCache, cache_dir: Path, clean_env: Path
) -> None:
    import botocore.session
    from botocore.tokens import SSOTokenProvider

    config = clean_env / ".aws" / "config"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"[profile dev]\nsso_session = dev\n\n[sso-session dev]\nsso_start_url = {START}\n"
        "sso_region = eu-west-1\n"
    )
    cache.write(SESSION, token(T0 + timedelta(hours=1)))
    session = botocore.session.Session(profile="dev")
    provider = SSOTokenProvider(session, cache=botocore_cache(cache_dir), time_fetcher=lambda: T0)
    frozen = provider.load_token().get_frozen_token()
    assert frozen.token == "at-170000"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21T17:00:00Z",
        "2026-11-21T17:00:00+00:00",
        "2026-11-21T18:00:00+01:00",
        "2026-11-21T17:00:00.000Z",
        "2026-11-21T17:00:00UTC",
        "2026-11-21T17:00:00",
        "2026-11-21 17:00:00Z",
    ],
)
def test_times_are_read_tolerantly(text: str) -> None:
    assert parse_when(text) == datetime(2026, 11, 21, 17, 0, tzinfo=UTC)


def test_unknown_fields_are_kept(cache: TokenCache) -> None:
    path = cache.path(SESSION)
    path.parent.mkdir(parents=True)
    entry = token(T0 + timedelta(hours=1)).to_json()
    entry["someNewField"] = {"kept": True}
    path.write_text(json.dumps(entry))
    current = cache.read(SESSION)
    assert current is not None
    cache.write(SESSION, token(T0 + timedelta(hours=2)))
    saved = json.loads(path.read_text())
    assert saved["someNewField"] == {"kept": True}
    assert saved["expiresAt"] == "2026-11-21T18:00:00Z"


# -- files --------------------------------------------------------------------------------------


def test_write_is_atomic_and_private(cache: TokenCache, cache_dir: Path, clean_env: Path) -> None:
    cache.write(SESSION, token(T0 + timedelta(hours=1)))
    path = cache.path(SESSION)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (clean_env / ".aws", clean_env / ".aws" / "sso", cache_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    inode = path.stat().st_ino
    cache.write(SESSION, token(T0 + timedelta(hours=2)))
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    leftovers = [p.name for p in cache_dir.iterdir() if not p.name.endswith((".json", "-lock"))]
    assert leftovers == []


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b'{"accessToken": "x"}',
        b'{"accessToken": "x", "expiresAt": "soon"}',
    ],
)
def test_a_corrupt_file_is_left_alone_with_a_clear_error(cache: TokenCache, content: bytes) -> None:
    path = cache.path(SESSION)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    before = path.stat()
    with pytest.raises(SsoCacheError) as info:
        cache.read(SESSION)
    assert str(path) in str(info.value) and "left it untouched" in str(info.value)
    assert "mv " in (info.value.hint or "")
    with pytest.raises(SsoCacheError):
        cache.write(SESSION, token(T0 + timedelta(hours=1)), keep_newer=False)
    assert path.read_bytes() == content
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_newer_token_in_the_file_is_never_replaced(cache: TokenCache) -> None:
    newer = token(T0 + timedelta(hours=2), refresh="rotated-by-botocore")
    cache.write(SESSION, newer)
    kept = cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="older"))
    assert kept.refresh_token == "rotated-by-botocore"
    on_disk = cache.read(SESSION)
    assert on_disk is not None and on_disk.refresh_token == "rotated-by-botocore"


def test_the_lock_is_bounded_and_says_who_to_blame(cache: TokenCache, cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True)
    lock = str(cache.path(SESSION)) + ".credd-lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            lock,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(SsoCacheError) as info, cache.locked(SESSION):
            pass
        assert "fuser" in (info.value.hint or "")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    with cache.locked(SESSION):  # free again
        pass


def test_registrations_are_the_clis_format(cache: TokenCache) -> None:
    reg = Registration(
        "cid", "csecret", T0 + timedelta(days=90), ("sso:account:access",), ("authorization_code",)
    )
    cache.write_registration(SESSION, reg)
    raw = json.loads(cache.registration_path(SESSION).read_text())
    assert raw == {
        "clientId": "cid",
        "clientSecret": "csecret",
        "expiresAt": "2027-02-19T16:00:00Z",
        "scopes": ["sso:account:access"],
        "grantTypes": ["authorization_code"],
    }
    again = cache.read_registration(SESSION)
    assert again is not None and again.for_auth_code and again.expires_at == reg.expires_at


def test_reprs_hold_no_secret() -> None:
    t = token(T0 + timedelta(hours=1))
    text = repr(t) + repr(Registration("cid-x", "csecret-x", T0))
    for secret in ("at-170000", "rt-1", "csecret"):
        assert secret not in text


# -- settings -----------------------------------------------------------------------------------


def test_profiles_resolve_both_ways_and_through_a_role_chain() -> None:
    full = {
        "profiles": {
            "new": {"sso_session": "dev", "sso_account_id": "1", "sso_role_name": "R"},
            "old": {"sso_start_url": START, "sso_region": "eu-west-1"},
            "role": {"role_arn": "arn:aws:iam::111111111111:role/x", "source_profile": "new"},
            "keys": {"aws_access_key_id": "AKIA"},
        },
        "sso_sessions": {
            "dev": {
                "sso_start_url": START,
                "sso_region": "eu-west-1",
                "sso_registration_scopes": "sso:account:access, ",
            }
        },
    }
    assert resolve_profile("new", full) == SESSION == resolve_session("dev", full)
    assert resolve_profile("role", full) == SESSION
    assert resolve_profile("old", full) == LEGACY
    with pytest.raises(Exception, match="does not use IAM Identity Center"):
        resolve_profile("keys", full)
    with pytest.raises(Exception, match=r"no \[sso-session nope\]"):
        resolve_session("nope", full)


# -- when to refresh ------------------------------------------------------------------------------


def test_refresh_is_due_well_ahead_of_botocores_window() -> None:
    clock = FakeClock(T0)
    t = token(T0 + timedelta(hours=1))
    assert refresh_at(t) == T0 + timedelta(minutes=40)  # 20 min lead > botocore's 15 min
    clock.advance(39 * 60 + 59)
    assert not refresh_due(t, clock.now())
    clock.advance(1)
    assert refresh_due(t, clock.now())
    long = token(T0 + timedelta(hours=8))
    assert refresh_at(long, lifetime=timedelta(hours=8)) == T0 + timedelta(hours=7)
    short = token(T0 + timedelta(minutes=4))
    assert refresh_at(short, lifetime=timedelta(minutes=4)) == T0 + timedelta(minutes=2)


def test_legacy_and_unrefreshable_tokens_are_never_due() -> None:
    late = T0 + timedelta(hours=5)
    assert not refresh_due(token(T0 + timedelta(hours=1)), late, legacy=True)
    plain = token(T0 + timedelta(hours=1), refresh=None)
    assert refresh_at(plain) is None and not refresh_due(plain, late)


def test_no_token_means_login_required_with_the_command(cache: TokenCache) -> None:
    store = TokenStore(cache, clock=cache.clock)
    with pytest.raises(LoginRequired) as info:
        store.access_token(SESSION, profile="dev")
    assert info.value.code == "login_required"
    assert info.value.hint == "run: credd login dev"
    cache.write(LEGACY, token(T0 - timedelta(seconds=1), refresh=None))
    with pytest.raises(LoginRequired, match="cannot refresh"):
        store.access_token(LEGACY)


# -- the refresh orchestration, with a scripted SSO-OIDC (pure logic; the sandbox tests in
# -- test_sso_login.py cover the same paths against a real server) --------------------------


class ScriptedOidc:
    """``create_token`` answers from a script; ``before`` runs first (a concurrent writer)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[dict[str, Any]] = []
        self.before: Any = None
        self.error: str | None = None
        self.status = 400
        self.rotations = 0

    def create_token(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append(params)
        if self.before is not None:
            self.before()
        if self.error:
            raise ClientError(
                {
                    "Error": {"Code": self.error, "Message": "echo " + params["refreshToken"]},
                    "ResponseMetadata": {"HTTPStatusCode": self.status},
                },
                "CreateToken",
            )
        self.rotations += 1
        return {
            "accessToken": f"access-{self.rotations}",
            "expiresIn": 3600,
            "refreshToken": f"refresh-{self.rotations}",
            "tokenType": "Bearer",
        }


class ScriptedClients:
    def __init__(self, oidc: ScriptedOidc) -> None:
        self.oidc = oidc

    def unsigned_client(self, service: str, profile: str | None, region: str) -> Any:
        assert service == "sso-oidc" and region == SESSION.region
        return self.oidc


@pytest.fixture
def scripted(cache: TokenCache) -> tuple[TokenStore, ScriptedOidc, FakeClock]:
    clock = cache.clock
    assert isinstance(clock, FakeClock)
    oidc = ScriptedOidc(clock)
    store = TokenStore(cache, ScriptedClients(oidc), clock=clock)  # type: ignore[arg-type]
    return store, oidc, clock


def test_refresh_writes_the_rotated_refresh_token_back(
    cache: TokenCache, scripted: tuple[TokenStore, ScriptedOidc, FakeClock]
) -> None:
    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="rt-0"))
    assert store.access_token(SESSION).access_token == "at-170000"  # not due: no call
    assert oidc.calls == []
    clock.advance(41 * 60)
    got = store.access_token(SESSION, profile="dev")
    assert got.access_token == "access-1"
    assert oidc.calls[0]["grantType"] == "refresh_token"
    assert oidc.calls[0]["refreshToken"] == "rt-0"
    on_disk = cache.read(SESSION)
    assert on_disk is not None and on_disk.refresh_token == "refresh-1"
    assert on_disk.expires_at == clock.now() + timedelta(hours=1)
    assert store.next_refresh(SESSION, on_disk) == on_disk.expires_at - timedelta(minutes=20)


def test_a_concurrent_botocore_refresh_is_never_lost(
    cache: TokenCache, cache_dir: Path, scripted: tuple[TokenStore, ScriptedOidc, FakeClock]
) -> None:
    from botocore.utils import SSOTokenLoader

    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="rt-0"))
    clock.advance(45 * 60)
    later = clock.now() + timedelta(hours=1, minutes=5)

    def botocore_refreshes_meanwhile() -> None:  # botocore does not lock
        entry = token(later, refresh="botocore-rotated").to_json()
        SSOTokenLoader(cache=botocore_cache(cache_dir)).save_token(START, entry, "dev")

    oidc.before = botocore_refreshes_meanwhile
    got = store.refresh(SESSION)
    assert got.refresh_token == "botocore-rotated"
    on_disk = cache.read(SESSION)
    assert on_disk is not None and on_disk.refresh_token == "botocore-rotated"


def test_a_refresh_token_spent_by_botocore_is_not_a_login(
    cache: TokenCache, cache_dir: Path, scripted: tuple[TokenStore, ScriptedOidc, FakeClock]
) -> None:
    from botocore.utils import SSOTokenLoader

    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="rt-0"))
    clock.advance(45 * 60)

    def botocore_won_the_race() -> None:
        entry = token(clock.now() + timedelta(hours=1), refresh="botocore-rotated").to_json()
        SSOTokenLoader(cache=botocore_cache(cache_dir)).save_token(START, entry, "dev")
        oidc.before = None

    oidc.before = botocore_won_the_race
    oidc.error = "InvalidGrantException"
    got = store.refresh(SESSION)
    assert got.refresh_token == "botocore-rotated" and len(oidc.calls) == 1


def test_a_revoked_refresh_token_means_login_required_once(
    cache: TokenCache, scripted: tuple[TokenStore, ScriptedOidc, FakeClock], caplog: Any
) -> None:
    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="rt-secret-0"))
    clock.advance(45 * 60)
    oidc.error = "InvalidGrantException"
    with pytest.raises(LoginRequired) as info:
        store.refresh(SESSION, profile="dev")
    assert info.value.hint == "run: credd login dev"
    assert info.value.fields["expires_at"] == T0 + timedelta(hours=1)
    assert "rt-secret-0" not in str(info.value) + caplog.text
    # still usable until its end, then login required
    assert store.access_token(SESSION).access_token == "at-170000"
    clock.advance(15 * 60)
    with pytest.raises(LoginRequired):
        store.access_token(SESSION)


def test_an_expired_registration_needs_a_login_without_calling_aws(
    cache: TokenCache, scripted: tuple[TokenStore, ScriptedOidc, FakeClock]
) -> None:
    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1)))
    clock.set(T0 + timedelta(days=91))
    with pytest.raises(LoginRequired, match="registration has expired"):
        store.refresh(SESSION, force=True)
    assert oidc.calls == []


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [("InternalServerException", 500, True), ("ThrottlingException", 429, True)],
)
def test_server_trouble_is_transient_and_the_token_is_kept(
    cache: TokenCache,
    scripted: tuple[TokenStore, ScriptedOidc, FakeClock],
    code: str,
    status: int,
    transient: bool,
) -> None:
    store, oidc, clock = scripted
    cache.write(SESSION, token(T0 + timedelta(hours=1), refresh="rt-0"))
    clock.advance(45 * 60)
    oidc.error, oidc.status = code, status
    with pytest.raises(Exception) as info:
        store.refresh(SESSION)
    assert getattr(info.value, "transient", False) is transient
    assert store.access_token(SESSION).access_token == "at-170000"
    on_disk = cache.read(SESSION)
    assert on_disk is not None and on_disk.refresh_token == "rt-0"
