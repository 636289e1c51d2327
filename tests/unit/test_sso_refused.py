"""A refused SSO access token (pure logic: the shared cache in a temp HOME, a fake clock): never
handed out again, while a different token in the cache is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from credd.errors import LoginRequired
from credd.sso.cache import TokenCache
from credd.sso.settings import SsoTarget
from credd.sso.tokens import TokenStore
from credd.testing.clock import FakeClock
from tests.unit.test_sso_cache import LEGACY, SESSION, T0, token


@pytest.mark.parametrize("target", [LEGACY, SESSION], ids=["legacy", "no_refresh_token"])
def test_a_refused_token_is_never_handed_out_and_a_new_login_is(
    clean_env: Path, target: SsoTarget
) -> None:
    clock = FakeClock(T0)
    store = TokenStore(TokenCache(clean_env / "cache", clock=clock), clock=clock)
    revoked = token(T0 + timedelta(minutes=50), refresh=None)
    store.cache.write(target, revoked)
    assert store.access_token(target).access_token == revoked.access_token
    store.reject(target, revoked.access_token)
    assert store.rejected(target, revoked.access_token)
    assert not store.usable(target, revoked, clock.now())  # 50 min left, refused all the same
    with pytest.raises(LoginRequired) as exc:
        store.access_token(target, profile="dev")
    assert "credd login" in (exc.value.hint or "")
    assert revoked.access_token not in str(exc.value)
    login = token(T0 + timedelta(minutes=59), refresh=None)  # a new login lands in the cache
    store.cache.write(target, login)
    assert store.access_token(target).access_token == login.access_token
    assert not store.rejected(target, login.access_token)


def test_what_is_remembered_of_a_refused_token_is_a_digest(clean_env: Path) -> None:
    clock = FakeClock(T0)
    store = TokenStore(TokenCache(clean_env / "cache", clock=clock), clock=clock)
    secret = "at-refused-secret-value"
    store.reject(SESSION, secret)
    assert secret not in repr(store.__dict__)
    assert not store.rejected(LEGACY, secret)  # per login
