"""Key age for ``doctor``/``status`` and the verification step's bounded retries (IAM's
propagation delay), on an injected clock against the sandbox and the real keyring."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from credd.actions.rotation import (
    Iam,
    RotationError,
    Rotator,
    forget_key_age,
    key_ages,
    remember_key_age,
)
from credd.cli.keys import StoreKeys
from credd.doctor import WARN, check_key_ages
from credd.models import Credentials
from credd.testing.clock import FakeClock
from tests.fixtures.daemon import remember
from tests.fixtures.sandbox import SandboxHandle


def _config(home: Path, body: str) -> None:
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(body)


def test_doctor_warns_when_the_key_is_older_than_its_max_age(
    clean_env: Path, keyring_env: Any
) -> None:
    store = keyring_env.store(service="credd")
    _config(clean_env, "[profile old]\ncredd = true\ncredd_key_max_age = 60d\n"
                       "[profile young]\ncredd = true\n")  # fmt: skip
    clock = FakeClock()
    for name in ("old", "young"):
        store.set_long_term_keys(name, f"AKIA{name.upper():0<16}", "s" * 40)
    remember_key_age(store, "old", "AKIAOLD0000000000000", clock.now() - timedelta(days=61))
    remember_key_age(store, "young", "AKIAYOUNG00000000000", clock.now() - timedelta(days=10))
    ages = {name: (age, max_age) for name, age, max_age in key_ages(store, clock)}
    assert ages["old"] == (timedelta(days=61), timedelta(days=60))
    assert ages["young"] == (timedelta(days=10), None)
    checks = {c.name: c for c in check_key_ages(store, clock)}
    assert checks["key-age:old"].status == WARN and checks["key-age:old"].fix == (
        "credd keys rotate old"
    )
    assert checks["key-age:young"].status == "ok"  # under the 90-day default


def test_one_bad_max_age_hides_only_that_profiles_key_age(
    clean_env: Path, keyring_env: Any
) -> None:
    """A wrong ``credd_key_max_age`` marks that profile broken at config load; every other
    profile's key age is still reported (it used to hide them all)."""
    from credd.aws import config as awsconfig

    store = keyring_env.store(service="credd")
    _config(clean_env, "[profile bad]\ncredd = true\ncredd_key_max_age = sixty days\n"
                       "[profile good]\ncredd = true\ncredd_key_max_age = 1440h\n"
                       "[profile zero]\ncredd = true\ncredd_key_max_age = 0d\n")  # fmt: skip
    clock = FakeClock()
    for name in ("bad", "good", "zero"):
        key_id = f"AKIA{name.upper():0<16}"
        store.set_long_term_keys(name, key_id, "s" * 40)
        remember_key_age(store, name, key_id, clock.now() - timedelta(days=61))
    ages = {name: (age, max_age) for name, age, max_age in key_ages(store, clock)}
    assert ages == {"good": (timedelta(days=61), timedelta(days=60))}
    broken = awsconfig.load().broken
    assert set(broken) == {"bad", "zero"}
    assert "credd_key_max_age" in broken["bad"].error.message
    assert broken["bad"].error.hint and "60d" in broken["bad"].error.hint
    checks = {c.name: c for c in check_key_ages(store, clock)}
    assert checks["key-age:good"].status == WARN


def test_key_ages_never_read_a_secret(clean_env: Path, keyring_env: Any) -> None:
    """``credd status`` shows key ages from the key id and date credd recorded next to the keys,
    never by reading the keys themselves (the secret access key has no business in status)."""
    store = keyring_env.store(service="credd")
    _config(clean_env, "[profile user]\ncredd = true\n[profile gone]\ncredd = true\n")
    clock = FakeClock()
    for name in ("user", "gone"):
        key_id = f"AKIA{name.upper():0<16}"
        store.set_long_term_keys(name, key_id, "s" * 40)
        remember_key_age(store, name, key_id, clock.now() - timedelta(days=3))
    forget_key_age(store, "gone")  # what credd keys delete does

    def no_secrets(profile: str) -> None:
        raise AssertionError(f"read the long-term keys of {profile}")

    store.get_long_term_keys = no_secrets  # type: ignore[method-assign]
    ages = {name: (age, max_age) for name, age, max_age in key_ages(store, clock)}
    assert ages == {"user": (timedelta(days=3), None)}


@pytest.mark.integration
def test_verification_waits_for_iam_propagation_on_the_injected_clock(
    sandbox_clean: SandboxHandle, keyring_env: Any
) -> None:
    user = sandbox_clean.new_user("prop")
    remember(user.secret_access_key)
    store = keyring_env.store()
    store.set_long_term_keys("p", user.access_key_id, user.secret_access_key)
    clock = FakeClock()

    def make(service: str, c: Credentials) -> Any:
        return sandbox_clean.client(service, c.access_key_id, c.secret_access_key, c.session_token)

    keys = StoreKeys(store, "p")
    rotator = Rotator("p", keys=keys, journal=store, iam=Iam(make, None), iam_credentials=keys.get,
                      clock=clock)  # fmt: skip
    # a new key is not accepted at once by AWS: two refusals, then it works
    admin = sandbox_clean.admin
    admin.set_fail("InvalidClientTokenId", 403, count=2, actions=["GetCallerIdentity"])
    outcome = rotator.rotate()
    assert outcome.verify_attempts == 3 and clock.slept == [1, 2]
    new = store.get_long_term_keys("p")
    assert new is not None and new.access_key_id == outcome.new_key
    remember(new.secret_access_key)
    # never accepted: bounded; the working key stays stored, the journal kept for the next run
    admin.set_fail("InvalidClientTokenId", 403, actions=["GetCallerIdentity"])
    with pytest.raises(RotationError, match="still does not work"):
        rotator.rotate()
    assert sum(clock.slept) <= 3 + 60
    assert keys.get().access_key_id == outcome.new_key
    assert store.get_session("rotation:p") is not None
    admin.clear_knobs()
    finished = rotator.rotate()  # deletes the unverified key, rotates afresh
    assert finished.recovered and len(finished.cleaned) == 1
    assert store.get_session("rotation:p") is None
    stored = store.get_long_term_keys("p")
    assert stored is not None
    remember(stored.secret_access_key)
    iam = make("iam", stored)
    assert [k["AccessKeyId"] for k in iam.list_access_keys()["AccessKeyMetadata"]] == [
        stored.access_key_id
    ]


def test_keys_in_the_credentials_file_are_read_as_they_are_now(
    clean_env: Path, keyring_env: Any
) -> None:
    """aws-runas 53: a long-running daemon kept signing with a key rotated away. The daemon's
    view of the files is loaded at start; the keys must come from the file at each fetch."""
    from credd.aws import config as awsconfig
    from credd.sources.keys import long_term_keys

    _config(clean_env, "[profile work]\ncredd = true\n")
    creds = clean_env / ".aws" / "credentials"
    line = "[work]\naws_access_key_id = AKIA{}0000000000000\naws_secret_access_key = {}\n"
    creds.write_text(line.format("OLD", "o"))
    profile = awsconfig.load().managed["work"]  # what the daemon holds since its start
    creds.write_text(line.format("NEW", "n"))
    keys = long_term_keys(profile, keyring_env.store())
    assert keys.access_key_id == "AKIANEW0000000000000"
