"""The planner on real AWS config files (pure logic: no STS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from credd.aws import config as awsconfig
from credd.aws.config import ManagedProfile
from credd.errors import ConfigError
from credd.plan.planner import explain, plan_for

USER = """
[profile user]
credd = true
mfa_serial = arn:aws:iam::111111111111:mfa/alice
"""


def load(home: Path, text: str) -> awsconfig.AwsConfig:
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(text)
    return awsconfig.load()


def role(name: str, source: str, *extra: str, managed: bool = True) -> str:
    lines = [
        f"[profile {name}]",
        f"role_arn = arn:aws:iam::222222222222:role/{name}",
        f"source_profile = {source}",
        *extra,
    ]
    if managed:
        lines.append("credd = true")
    return "\n".join(lines) + "\n"


def source_of(kind: str) -> Callable[[ManagedProfile], str]:
    return lambda _p: kind


def test_roles_behind_one_user_share_one_mfa_session(clean_env: Path) -> None:
    cfg = load(clean_env, USER + "".join(role(f"r{i}", "user") for i in range(10)))
    plans = [plan_for(cfg, f"r{i}", source_of("person")) for i in range(10)]
    sessions = {p.nodes()[0].key for p in plans}
    assert sessions == {"session:user"}
    assert all(
        p.target.key == f"role:r{i}" and p.target.duration == 3600 for i, p in enumerate(plans)
    )
    assert all(p.code_node() is not None and p.code_node().key == "session:user" for p in plans)
    user = plan_for(cfg, "user", source_of("person"))
    assert user.target.key == "session:user"  # the user profile itself is the same node
    text = explain(plans[0], "person")
    assert "MFA session of 'user'" in text and "AssumeRole" in text
    assert "once per MFA session" in text


def test_long_role_session_goes_direct_with_an_unattended_code(clean_env: Path) -> None:
    cfg = load(clean_env, USER + role("long", "user", "duration_seconds = 28800"))
    plan = plan_for(cfg, "long", source_of("totp"))
    assert [n.key for n in plan.nodes()] == ["direct:long"]
    assert plan.target.with_code and plan.target.duration == 28800
    assert "straight from the keys of 'user' with an MFA code" in explain(plan, "totp")
    with pytest.raises(ConfigError, match=r"caps at 1 h per role session"):
        plan_for(cfg, "long", source_of("person"))


def test_chains_loops_and_missing_sources_are_clear_errors(clean_env: Path) -> None:
    cfg = load(
        clean_env,
        USER
        + role("a", "user")
        + role("b", "a")
        + role("c", "b", "duration_seconds = 7200")
        + role("loop1", "loop2")
        + role("loop2", "loop1")
        + role("orphan", "nobody"),
    )
    b = plan_for(cfg, "b", source_of("totp"))
    assert [n.key for n in b.nodes()] == ["session:user", "role:a", "role:b"]
    assert "chained: capped at 1 h" in explain(b, "totp")
    with pytest.raises(ConfigError, match=r"capped at 1 h by STS \(chain: c -> b -> a -> user\)"):
        plan_for(cfg, "c", source_of("totp"))
    with pytest.raises(ConfigError, match="loops: loop1 -> loop2 -> loop1"):
        plan_for(cfg, "loop1", source_of("totp"))
    with pytest.raises(ConfigError, match="'nobody' does not exist"):
        plan_for(cfg, "orphan", source_of("totp"))


def test_no_mfa_and_environment_sources(clean_env: Path) -> None:
    cfg = load(
        clean_env,
        "[profile plain]\nregion = us-east-1\n"
        + role("nomfa", "plain", "duration_seconds = 14400")
        + "[profile env]\nrole_arn = arn:aws:iam::222222222222:role/env\n"
        "credential_source = Environment\ncredd = true\n",
    )
    nomfa = plan_for(cfg, "nomfa", source_of("person"))
    assert [n.key for n in nomfa.nodes()] == ["role:nomfa"] and not nomfa.target.with_code
    assert nomfa.target.duration == 14400 and "nobody is ever asked" in explain(nomfa, None)
    env = plan_for(cfg, "env", source_of("person"))
    assert env.target.base_profile is None and "environment" in explain(env, None)


def test_bad_role_settings_mark_only_that_profile(clean_env: Path) -> None:
    cfg = load(
        clean_env,
        USER
        + role("ok", "user")
        + role("short", "user", "duration_seconds = 100")
        + "[profile both]\nrole_arn = arn:aws:iam::222222222222:role/x\nsource_profile = user\n"
        "credential_source = Environment\ncredd = true\n"
        + "[profile badarn]\nrole_arn = nope\nsource_profile = user\ncredd = true\n",
    )
    assert isinstance(cfg.managed["ok"], ManagedProfile)
    assert "900 to 43200" in cfg.broken["short"].error.message
    assert "both source_profile and credential_source" in cfg.broken["both"].error.message
    assert "not an IAM role ARN" in cfg.broken["badarn"].error.message
