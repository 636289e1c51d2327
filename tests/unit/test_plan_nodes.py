"""Typed plan nodes: the named constructors, the kind enum, one planning function per profile kind,
one source builder per kind, and fingerprints that saved sessions were made with (pure logic)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from credd.aws import config as awsconfig
from credd.aws.clients import ClientFactory
from credd.clock import parse_iso
from credd.engine.persist import fingerprint
from credd.errors import ConfigError
from credd.plan import planner
from credd.plan.nodes import Kind, Node, Plan
from credd.secrets.store import SecretStore
from credd.sources import _BUILDERS, build_source
from credd.sources.mfa import CodeLedger
from credd.sso import TokenStore
from credd.testing.clock import FakeClock

CONFIG = """
[profile user]
credd = true
mfa_serial = arn:aws:iam::111111111111:mfa/alice
credd_session_duration = 8h
[profile short]
role_arn = arn:aws:iam::222222222222:role/short
source_profile = user
credd = true
[profile long]
role_arn = arn:aws:iam::222222222222:role/long
source_profile = user
duration_seconds = 28800
credd = true
[profile chained]
role_arn = arn:aws:iam::222222222222:role/chained
source_profile = short
credd = true
[profile plain]
aws_access_key_id = AKIAEXAMPLEEXAMPLE00
aws_secret_access_key = x
[profile nomfa]
role_arn = arn:aws:iam::222222222222:role/nomfa
source_profile = plain
credd = true
[profile env]
role_arn = arn:aws:iam::222222222222:role/env
credential_source = Environment
credd = true
[profile web]
role_arn = arn:aws:iam::222222222222:role/web
web_identity_token_file = /nonexistent/token
credd = true
[profile helper]
credential_process = /bin/true --json
credd = true
[profile onhelper]
role_arn = arn:aws:iam::222222222222:role/onhelper
source_profile = helper
credd = true
[sso-session corp]
sso_start_url = https://example.awsapps.com/start
sso_region = us-east-1
[profile sso]
sso_session = corp
sso_account_id = 333333333333
sso_role_name = Dev
credd = true
[profile vault]
credd_vault_addr = https://bao.example.com:8200
credd_vault_role = deploy
credd = true
[profile legacy]
sso_start_url = https://legacy.awsapps.com/start
sso_region = us-east-1
sso_account_id = 444444444444
sso_role_name = Ops
credd = true
[profile onsso]
role_arn = arn:aws:iam::222222222222:role/onsso
source_profile = sso
credd = true
"""

#: The fingerprints credd 0.x (before typed nodes) saved these nodes' sessions under, for the
#: config above: the same settings must give the same fingerprint, or a restart after an upgrade
#: would drop every saved session and ask people for codes again.
SAVED_FINGERPRINTS = {
    "direct:long": "13d568046e97fdbfcbdd436e20586b211e09ff9b765d5ca0981dd986b2ec2666",
    "process:helper": "fef40decb3e9b9c556426e68cbb09f82cfde6d5853b46b2c242a47b10f9df705",
    "role:chained": "b499a85cdaab0bc1767a005ea20c713c843a148871143bfd3a0627d0497229ec",
    "role:env": "34147b8f56c073d3ce782225b4dcb4844f7cd7895a41949b466e4f790e50076e",
    "role:nomfa": "f0f1adc5e3af6cab71b2ec23096d27def4d397beb9b9d03794846471e89be9fe",
    "role:onhelper": "191cdec1f5a4584f58734701e85ea87caf2e825ce16b75e02f0813d35b137776",
    "role:onsso": "1447333c4c1a89eed2558a77f59057cd0ed85f3073dea39ce0430b0098ddd02e",
    "role:short": "7eea5421604e2fed5a8062cf33d05ed847ae4b5f7d624a066f6780929b9451f5",
    "session:user": "48be6e3d773199c5065ef2098fff1c4c109d2ef3781009e317fbcea5cb840ef1",
    "sso-token:corp": "f37ca1a7f88d62a3282428040cb2cbcd088d029ff1c5232726797cae3abdad49",
    "sso-token:https://legacy.awsapps.com/start": (
        "27cfa100b996622b6d1965a371c1013af5faac9de508fcb6f83f8893ae26e8de"
    ),
    "sso:corp:333333333333:Dev": "7c20110dedcfcdc5c689c6e20afd077bcad052cc15b5632e158d4cd6ddd228e5",
    "sso:https://legacy.awsapps.com/start:444444444444:Ops": (
        "740366991932faf3bf7b5ddc91fc29d02d57bf9bca105ba514e1998659b81654"
    ),
    "vault:vault": "8bbc796ec4dbe02edd3d7443c577bb267a29f20cbe9b8c801157a9f1418bd437",
    "web-identity:web": "fa2d276ce072453646e756a80d20afb6b8d3a44b3493087f5ee5ca34e8c424ee",
}


def load(home: Path, extra: str = "") -> awsconfig.AwsConfig:
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(CONFIG + extra)
    return awsconfig.load()


def totp(_profile: awsconfig.ManagedProfile) -> str:
    return "totp"


def person(_profile: awsconfig.ManagedProfile) -> str:
    return "person"


def plain_keys(cfg: awsconfig.AwsConfig) -> awsconfig.ManagedProfile:
    """The settings of the unmanaged IAM user profile ``plain`` (a chain's keys)."""
    return awsconfig.profile_settings(
        "plain", cfg.profiles["plain"], cfg.session_minimum, cfg.sso_sessions
    )


# -- the named constructors ------------------------------------------------------------------


def test_named_constructors_give_the_keys_kinds_and_bases_of_each_call(clean_env: Path) -> None:
    cfg = load(clean_env)
    user, short, long = cfg.managed["user"], cfg.managed["short"], cfg.managed["long"]

    session = Node.session(user, "totp")
    assert (session.key, session.kind, session.parent) == ("session:user", Kind.SESSION, None)
    assert (session.base, session.base_profile, session.with_code) == ("user", user, True)
    assert session.duration == 8 * 3600 and session.code_source == "totp"
    assert session.code_profile == "user"

    role = Node.role(short, session)  # from the session: its keys are the chain's
    assert (role.key, role.kind, role.parent) == ("role:short", Kind.ROLE, session)
    assert (role.base, role.base_profile, role.with_code, role.duration) == (
        "user",
        user,
        False,
        3600,
    )
    assert role.code_profile is None and role.code_source is None

    keyed = Node.role(cfg.managed["nomfa"], keys=plain_keys(cfg))
    assert (keyed.key, keyed.base, keyed.parent) == ("role:nomfa", "plain", None)
    environment = Node.role(cfg.managed["env"])
    assert (environment.base, environment.base_profile) == ("", None)

    direct = Node.direct(long, user, "process")
    assert (direct.key, direct.kind, direct.parent, direct.with_code) == (
        "direct:long",
        Kind.ROLE,
        None,
        True,
    )
    assert (direct.base, direct.duration, direct.code_source) == ("user", 28800, "process")

    with pytest.raises(ValueError, match="not both"):
        Node.role(short, session, keys=user)


def test_named_constructors_of_chain_bases(clean_env: Path) -> None:
    cfg = load(clean_env)
    web = Node.web_identity(cfg.managed["web"])
    assert (web.key, web.kind, web.duration, web.base) == (
        "web-identity:web",
        Kind.WEB_IDENTITY,
        3600,
        "",
    )
    assert Node.process(cfg.managed["helper"]).key == "process:helper"
    assert Node.vault(cfg.managed["vault"]).kind is Kind.VAULT
    sso = Node.sso(cfg.managed["sso"])
    assert (sso.key, sso.kind) == ("sso:corp:333333333333:Dev", Kind.SSO)
    assert sso.parent == Node.sso_token(cfg.managed["sso"]) and sso.parent is not None
    assert (sso.parent.key, sso.parent.kind) == ("sso-token:corp", Kind.SSO_TOKEN)
    legacy = Node.sso(cfg.managed["legacy"])
    assert legacy.key == "sso:https://legacy.awsapps.com/start:444444444444:Ops"
    with pytest.raises(ValueError, match="not an IAM Identity Center profile"):
        Node.sso_token(cfg.managed["user"])


def test_kind_is_an_enum_whose_values_are_the_saved_strings() -> None:
    assert [k.value for k in Kind] == [
        "session-token",
        "assume-role",
        "web-identity",
        "sso-token",
        "sso",
        "process",
        "vault",
    ]
    assert Kind("sso") is Kind.SSO and "sso" in {Kind.SSO}  # a str: hashes and compares as one
    assert f"{Kind.SSO_TOKEN}" == str(Kind.SSO_TOKEN) == "sso-token"
    assert [k for k in Kind if not k.saved] == [Kind.SSO_TOKEN]
    assert [k for k in Kind if k.from_keys] == [Kind.SESSION, Kind.ROLE]


def test_a_kind_given_as_its_string_becomes_the_enum(clean_env: Path) -> None:
    user = load(clean_env).managed["user"]
    args = ("session:user", "session-token", user, None, "user", True, user.duration_seconds, user)
    node = Node(*args)  # type: ignore[arg-type]
    assert node.kind is Kind.SESSION and node == Node.session(user)


def test_the_code_source_decided_is_carried_but_not_part_of_the_call(clean_env: Path) -> None:
    """A reload after ``credd totp set`` keeps the node (and its session) and its fingerprint."""
    user = load(clean_env).managed["user"]
    a, b = Node.session(user, "person"), Node.session(user, "totp")
    assert a == b and hash(a) == hash(b) and fingerprint(a) == fingerprint(b)
    assert Plan("user", b).code_source == "totp"
    assert Plan("x", Node.process(load(clean_env).managed["helper"])).code_source is None


def test_saved_sessions_keep_their_fingerprints(clean_env: Path) -> None:
    cfg = load(clean_env)
    found = {}
    for name in ["user", "short", "long", "chained", "nomfa", "env", "web", "helper"]:
        for node in planner.plan_for(cfg, name, totp).nodes():
            found[node.key] = fingerprint(node)
    for name in ["onhelper", "sso", "onsso", "vault", "legacy"]:
        for node in planner.plan_for(cfg, name, totp).nodes():
            found[node.key] = fingerprint(node)
    assert found == SAVED_FINGERPRINTS


# -- one planning function per kind of profile --------------------------------------------


def test_plan_user_is_the_users_mfa_session_with_its_code_source(clean_env: Path) -> None:
    cfg = load(clean_env)
    node = planner.plan_user(cfg.managed["user"], person)
    assert node == Node.session(cfg.managed["user"]) and node.code_source == "person"
    assert planner.plan_for(cfg, "user", totp).code_source == "totp"


def test_plan_sso_and_plan_helper(clean_env: Path) -> None:
    cfg = load(clean_env)
    assert [n.key for n in Plan("sso", planner.plan_sso(cfg.managed["sso"])).nodes()] == [
        "sso-token:corp",
        "sso:corp:333333333333:Dev",
    ]
    assert planner.plan_helper(cfg.managed["helper"]) == Node.process(cfg.managed["helper"])
    assert planner.plan_helper(cfg.managed["vault"]) == Node.vault(cfg.managed["vault"])


def test_plan_environment_web_identity_or_role_never_mfa(clean_env: Path) -> None:
    cfg = load(
        clean_env,
        "[profile envmfa]\nrole_arn = arn:aws:iam::222222222222:role/x\n"
        "credential_source = Environment\n"
        "mfa_serial = arn:aws:iam::111111111111:mfa/bob\ncredd = true\n",
    )
    env = planner.plan_environment("env", [cfg.managed["env"]], cfg)
    assert env == Node.role(cfg.managed["env"]) and env.base == ""
    web = planner.plan_environment("web", [cfg.managed["web"]], cfg)
    assert web.kind is Kind.WEB_IDENTITY
    with pytest.raises(ConfigError, match="MFA with credential_source is not supported"):
        planner.plan_environment("envmfa", [cfg.managed["envmfa"]], cfg)


def test_plan_keys_picks_keys_session_or_direct(clean_env: Path) -> None:
    cfg = load(clean_env)
    user, plain = cfg.managed["user"], plain_keys(cfg)
    short, long, nomfa = cfg.managed["short"], cfg.managed["long"], cfg.managed["nomfa"]
    assert planner.plan_keys("nomfa", [nomfa, plain], cfg, person) == Node.role(nomfa, keys=plain)
    on_session = planner.plan_keys("short", [short, user], cfg, totp)
    assert on_session == Node.role(short, Node.session(user))
    assert on_session.parent is not None and on_session.parent.code_source == "totp"
    direct = planner.plan_keys("long", [long, user], cfg, totp)
    assert direct == Node.direct(long, user) and direct.code_source == "totp"
    with pytest.raises(ConfigError, match="codes for it come from a person"):
        planner.plan_keys("long", [long, user], cfg, person)
    with pytest.raises(ConfigError, match="codes for it come from a person"):
        planner.plan_keys("long", [long, user], cfg, lambda _p: None)  # undecided: strict


def test_plan_for_walks_the_chain_and_caps_chained_roles(clean_env: Path) -> None:
    cfg = load(
        clean_env,
        "[profile ssolong]\nrole_arn = arn:aws:iam::222222222222:role/x\nsource_profile = sso\n"
        "duration_seconds = 7200\ncredd = true\n",
    )
    chained = planner.plan_for(cfg, "chained", totp)
    assert [n.key for n in chained.nodes()] == ["session:user", "role:short", "role:chained"]
    assert chained.target.base == "user" and chained.code_source == "totp"
    on_helper = planner.plan_for(cfg, "onhelper", totp)
    assert [n.key for n in on_helper.nodes()] == ["process:helper", "role:onhelper"]
    assert [n.key for n in planner.plan_for(cfg, "onsso", totp).nodes()][-1] == "role:onsso"
    with pytest.raises(ConfigError, match="assumed from SSO role credentials is capped"):
        planner.plan_for(cfg, "ssolong", totp)


def test_decided_once_asks_once_per_profile(clean_env: Path) -> None:
    cfg = load(clean_env)
    asked: list[str] = []

    def counting(profile: awsconfig.ManagedProfile) -> str:
        asked.append(profile.name)
        return "totp"

    once = planner.decided_once(counting)
    for name in ["user", "short", "chained", "long"]:
        planner.plan_for(cfg, name, once)
    assert asked == ["user"]


# -- one source per kind, logged once ------------------------------------------------------


def test_build_source_has_one_builder_per_kind_and_logs_once(
    clean_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert set(_BUILDERS) == set(Kind)
    cfg = load(clean_env)
    clock = FakeClock(parse_iso("2026-03-01T09:00:00Z"))
    clients = ClientFactory()
    tokens = TokenStore(clients=clients, clock=clock)
    store = SecretStore(service="credd-test-unused", allow_prompt=False)
    nodes = {
        n.key: n
        for name in ["chained", "long", "nomfa", "env", "web", "onhelper", "sso", "vault"]
        for n in planner.plan_for(cfg, name, totp).nodes()
    }
    assert {n.kind for n in nodes.values()} == set(Kind)
    caplog.set_level(logging.INFO, logger="credd.sources")
    for node in nodes.values():
        caplog.clear()
        source = build_source(
            node,
            secrets=store,
            clients=clients,
            ledger=CodeLedger(clock),
            clock=clock,
            tokens=tokens,
        )
        assert source is not None
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and lines[0].startswith(f"{node.key}: "), lines
    assert "from the long-term keys of 'user' with an MFA code" in _logged(
        nodes["direct:long"], clients, tokens, store, clock, caplog
    )


def _logged(
    node: Node,
    clients: ClientFactory,
    tokens: TokenStore,
    store: SecretStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> str:
    caplog.clear()
    build_source(
        node,
        secrets=store,
        clients=clients,
        ledger=CodeLedger(clock),
        clock=clock,
        tokens=tokens,
    )
    return caplog.records[0].getMessage()


def test_sso_nodes_without_a_token_store_are_refused(clean_env: Path) -> None:
    cfg = load(clean_env)
    clock = FakeClock(parse_iso("2026-03-01T09:00:00Z"))
    with pytest.raises(TypeError, match="tokens="):
        build_source(
            Node.sso(cfg.managed["sso"]),
            secrets=SecretStore(service="credd-test-unused", allow_prompt=False),
            clients=ClientFactory(),
            ledger=CodeLedger(clock),
            clock=clock,
        )
