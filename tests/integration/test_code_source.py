"""Which MFA code source a profile uses is one decision (credd/sources/codes.py), and every place
that asks gets the same answer: the daemon, the plan the manager keeps, status, doctor and the
source itself (a real keyring, the daemon's load path in this process; no STS call)."""

from __future__ import annotations

from pathlib import Path

import pytest

from credd import doctor
from credd.clock import parse_iso
from credd.daemon.main import Daemon
from credd.plan.planner import explain, plan_for
from credd.sources.codes import ProfileCodes, code_source_of, decide
from credd.testing.clock import FakeClock
from tests.fixtures.daemon import remember
from tests.fixtures.keyring import KeyringEnv

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ARN = "arn:aws:iam::123456789012"
SECRET = "s" * 40


def user(name: str, *extra: str) -> str:
    return "\n".join(
        [f"[profile {name}]", "credd = true", f"mfa_serial = {ARN}:mfa/{name}", *extra]
    )


CONFIG = "\n".join(
    [
        user("seeded"),
        user("unseeded"),
        user("proc", "mfa_process = /bin/echo 123456"),
        user("forced", "credd_mfa_source = person"),
        "[profile short]\ncredd = true\nsource_profile = seeded\n" + f"role_arn = {ARN}:role/s",
        "[profile long]\ncredd = true\nsource_profile = seeded\n"
        + f"role_arn = {ARN}:role/l\nduration_seconds = 28800",
        "[profile waiting]\ncredd = true\nsource_profile = unseeded\n" + f"role_arn = {ARN}:role/w",
    ]
)
EXPECTED = {
    "seeded": "totp",
    "unseeded": "person",
    "proc": "process",
    "forced": "person",
    "short": "totp",
    "long": "totp",
    "waiting": "person",
}
WORDS = {
    "totp": "the TOTP seed in the keyring",
    "process": "mfa_process",
    "person": "a person (credd mfa)",
}


@pytest.fixture
def daemon(clean_env: Path, keyring_env: KeyringEnv) -> Daemon:
    aws = clean_env / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "config").write_text(CONFIG + "\n")
    store = keyring_env.store(allow_prompt=False)
    remember(SECRET, SEED)
    for name in ("seeded", "unseeded", "proc", "forced"):
        store.set_long_term_keys(name, "AKIA" + name.upper().ljust(16, "X")[:16], SECRET)
    store.set_totp_seed("seeded", SEED)
    store.set_totp_seed("forced", SEED)  # stored, but the profile says a person
    d = Daemon(clean_env / "run" / "credd.sock", secrets=store)
    d.reload()
    return d


def test_every_place_that_asks_gets_the_same_code_source(daemon: Daemon) -> None:
    config = daemon.read_config()
    clock = FakeClock(parse_iso("2026-03-01T09:00:00Z"))
    for name, expected in EXPECTED.items():
        plan = plan_for(config, name, daemon._code_source_of)
        code_node = plan.code_node()
        assert code_node is not None and code_node.base_profile is not None
        base = code_node.base_profile
        answers = {
            "daemon": daemon._code_source_of(base),
            "plan": plan.code_source,
            "codes": code_source_of(daemon.secrets)(base),
            "source": ProfileCodes(base, daemon.secrets, clock).configured().name,
            "status": daemon.manager.profile_status(name).mfa_source,
        }
        assert answers == dict.fromkeys(answers, expected), name
        said = f"from {WORDS[expected]}"
        assert said in explain(plan)
        assert said in (daemon.manager.profile_status(name).plan or "")
        check = doctor.check_profile(config, name, daemon.secrets, clock)
        assert check.status == doctor.OK and said in check.message, check


def test_storing_a_seed_later_changes_the_answer_at_the_next_ask(daemon: Daemon) -> None:
    """The rule is applied again, never contradicted: after ``credd totp set`` the source's next
    call, the daemon and a reload's plan all say totp (a session kept across the reload shows it
    in status from its next call, as before)."""
    config = daemon.read_config()
    profile = config.managed["unseeded"]
    source = ProfileCodes(profile, daemon.secrets, FakeClock(parse_iso("2026-03-01T09:00:00Z")))
    assert source.chosen().name == "person"
    daemon.secrets.set_totp_seed("unseeded", SEED)
    assert source.for_fetch().name == "totp" == daemon._code_source_of(profile)
    assert plan_for(daemon.read_config(), "waiting", daemon._code_source_of).code_source == "totp"


def test_without_a_store_what_needs_the_keyring_is_left_undecided(daemon: Daemon) -> None:
    config = daemon.read_config()
    undecided = code_source_of(None)
    assert undecided(config.managed["seeded"]) is None  # the source decides, by the same rule
    assert undecided(config.managed["proc"]) == "process"
    assert undecided(config.managed["forced"]) == "person"
    assert decide(config.managed["seeded"], lambda: True) == "totp"
