"""The config edit of ``credd sso populate`` (credd.sso.generate), on text: every byte that is
not a generated profile of this login stays, a second run changes nothing, prune removes only
what credd generated, the diff masks secrets."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from credd.cli.sso import choose_login
from credd.errors import ConfigError, UsageError
from credd.sso.generate import MARKER, Options, Plan, plan_edit, unified_diff
from credd.sso.naming import Assignment, NameTemplate
from credd.sso.settings import SsoTarget

A, B, C = "111111111111", "222222222222", "333333333333"
URL = "https://d-1234567890.awsapps.com/start"
CORP = SsoTarget(URL, "eu-west-1", "corp")
LEGACY = SsoTarget(URL, "eu-west-1", None)
PATH = Path("/tmp/config")
LISTING = [
    Assignment(A, "Admin", "Production"),
    Assignment(A, "ReadOnly", "Production"),
    Assignment(B, "DataScientist", "Data Science (Prod)"),
    Assignment(C, "Admin", "Sandbox"),
]
USER_CONFIG = """\
# my AWS config: every byte of mine must stay
[default]
region = eu-west-1   ; inline comment

[profile Production.ReadOnly]
# hand-written, with the name populate would give
sso_session = corp
sso_account_id = 111111111111
sso_role_name = ReadOnly
aws_secret_access_key = notreallyasecretbutmaskedanyway

[sso-session corp]
sso_start_url = https://d-1234567890.awsapps.com/start
sso_region = eu-west-1

[profile other-login]
sso_session = elsewhere
sso_account_id = 111111111111
sso_role_name = Admin
credd_generated = elsewhere
"""


def plan(
    text: str,
    listing: list[Assignment] = LISTING,
    target: SsoTarget = CORP,
    taken: tuple[str, ...] = (),
    **options: object,
) -> Plan:
    return plan_edit(text, PATH, target, listing, Options(**options), taken=taken)  # type: ignore[arg-type]


def actions(p: Plan) -> dict[str, str]:
    return {c.profile: c.action for c in p.changes}


def pairs(p: Plan) -> list[tuple[str, str]]:
    return [(c.profile, c.action) for c in p.changes]


def test_first_run_appends_one_profile_per_pair_and_keeps_every_user_byte() -> None:
    p = plan(USER_CONFIG)
    assert p.text.startswith(USER_CONFIG)
    assert actions(p) == {
        "Data-Science-Prod.DataScientist": "added",
        "Production.Admin": "added",
        f"Production.ReadOnly-{A}": "added",  # the hand-written name is not taken over
        "Sandbox.Admin": "added",
    }
    assert p.text[len(USER_CONFIG) :] == (
        "\n[profile Data-Science-Prod.DataScientist]\nsso_session = corp\n"
        f"sso_account_id = {B}\nsso_role_name = DataScientist\nregion = eu-west-1\n"
        f"{MARKER} = corp\n"
        f"\n[profile Production.Admin]\nsso_session = corp\nsso_account_id = {A}\n"
        f"sso_role_name = Admin\nregion = eu-west-1\n{MARKER} = corp\n"
        f"\n[profile Production.ReadOnly-{A}]\nsso_session = corp\nsso_account_id = {A}\n"
        f"sso_role_name = ReadOnly\nregion = eu-west-1\n{MARKER} = corp\n"
        f"\n[profile Sandbox.Admin]\nsso_session = corp\nsso_account_id = {C}\n"
        f"sso_role_name = Admin\nregion = eu-west-1\n{MARKER} = corp\n"
    )
    again = plan(p.text)
    assert again.text == p.text
    assert set(actions(again).values()) == {"unchanged"}


def test_prune_removes_only_generated_profiles_of_this_login_that_it_no_longer_reaches() -> None:
    full = plan(USER_CONFIG).text
    fewer = [p for p in LISTING if p.key != (A, "Admin")]
    kept = plan(full, fewer)
    assert kept.text == full  # without --prune: reported, not removed
    stale = [c for c in kept.changes if c.action == "stale"]
    assert [(c.profile, c.note) for c in stale] == [
        (
            "Production.Admin",
            "this login no longer reaches that account and role; --prune removes it",
        )
    ]
    pruned = plan(full, fewer, prune=True)
    assert actions(pruned)["Production.Admin"] == "pruned"
    assert pruned.text == plan(USER_CONFIG, fewer).text  # as if it had never been there
    assert plan(full, [], prune=True).text == USER_CONFIG  # all gone: the user's bytes exactly


def test_prune_keeps_comments_after_a_removed_section_and_profiles_chained_on_it() -> None:
    text = plan(USER_CONFIG, LISTING[:1]).text + "\n# my chained role\n[profile chained]\n"
    text += "source_profile = Production.Admin\nrole_arn = arn:aws:iam::111111111111:role/x\n"
    p = plan(text, LISTING[3:], prune=True)
    assert "Production.Admin" in p.text and actions(p)["Production.Admin"] == "stale"
    assert "another profile uses it as source_profile" in str(p.changes)
    middle = plan(USER_CONFIG, LISTING[:2]).text.replace(
        "\n[profile Production.ReadOnly-", "\n# about the next one\n[profile Production.ReadOnly-"
    )
    p = plan(middle, LISTING[1:2], prune=True)
    assert "# about the next one\n[profile Production.ReadOnly-" in p.text
    assert "[profile Production.Admin]" not in p.text


def test_user_additions_to_a_generated_profile_are_kept_and_credd_is_never_removed() -> None:
    text = plan(USER_CONFIG, LISTING[:1], manage=True).text
    assert "region = eu-west-1\ncredd = true\ncredd_generated = corp\n" in text
    text = text.replace("credd = true\n", "credd = true\n# mine\ns3 =\n  addressing_style = path\n")
    p = plan(text, LISTING[:1], region="us-west-2")  # no --manage this time
    assert actions(p) == {"Production.Admin": "updated"}
    assert p.text == text.replace(
        "region = eu-west-1\ncredd = true", "region = us-west-2\ncredd = true"
    )


def test_a_template_change_renames_in_place() -> None:
    text = plan(USER_CONFIG, LISTING[:2]).text + "\n# trailing comment of mine\n"
    text = text.replace(
        f"{MARKER} = corp\n\n[profile Production.ReadOnly",
        f"{MARKER} = corp\nmine = 1\n\n[profile Production.ReadOnly",
        1,
    )
    p = plan(text, LISTING[:2], names=NameTemplate("{account_id}-{role_name}", prefix="corp-"))
    assert actions(p) == {f"corp-{A}-Admin": "renamed", f"corp-{A}-ReadOnly": "renamed"}
    assert [c.previous for c in p.changes] == ["Production.Admin", f"Production.ReadOnly-{A}"]
    assert f"[profile corp-{A}-Admin]\nsso_session = corp" in p.text
    assert "mine = 1" in p.text and p.text.endswith("\n# trailing comment of mine\n")
    assert p.text.startswith(USER_CONFIG)


def test_names_in_the_credentials_file_other_logins_and_stale_ones_are_not_reused() -> None:
    quoted = USER_CONFIG + '\n[profile "Sandbox.Admin"]\nregion = eu-west-1\n'
    assert actions(plan(quoted, LISTING[3:])) == {f"Sandbox.Admin-{C}": "added"}  # as botocore
    p = plan(USER_CONFIG, LISTING[3:], taken=("Sandbox.Admin",))
    assert actions(p) == {f"Sandbox.Admin-{C}": "added"}
    other = plan(
        USER_CONFIG, [Assignment(A, "Admin", "other-login")], names=NameTemplate("{account_name}")
    )
    assert actions(other) == {f"other-login-{A}": "added"}  # another login's profile is not ours
    assert "[profile other-login]\nsso_session = elsewhere" in other.text
    text = plan(USER_CONFIG, LISTING[:1]).text  # Production.Admin, then A's Admin goes away
    moved = [Assignment(B, "Admin", "Production")]
    p = plan(text, moved)  # stale and kept: its name is not given to B's
    assert actions(p) == {"Production.Admin": "stale", f"Production.Admin-{B}": "added"}
    p = plan(text, moved, prune=True)  # pruned: the name is free again
    assert pairs(p) == [("Production.Admin", "added"), ("Production.Admin", "pruned")]
    assert "[profile Production.Admin]\nsso_session = corp\nsso_account_id = 222222222222" in p.text


def test_legacy_login_profiles_carry_the_start_url() -> None:
    p = plan("", LISTING[:1], target=LEGACY, region="us-east-2", extra=(("output", "json"),))
    assert p.text == (
        "[profile Production.Admin]\n"
        f"sso_start_url = {URL}\nsso_region = eu-west-1\nsso_account_id = {A}\n"
        f"sso_role_name = Admin\nregion = us-east-2\noutput = json\n{MARKER} = {URL}\n"
    )
    # the sso-session login does not own them
    assert actions(plan(p.text, [])) == {}
    assert actions(plan(p.text, [], target=LEGACY)) == {"Production.Admin": "stale"}


def test_crlf_and_no_final_newline_are_kept() -> None:
    crlf = USER_CONFIG.replace("\n", "\r\n")
    p = plan(crlf, LISTING[:1])
    assert p.text.startswith(crlf) and "\n" not in p.text.replace("\r\n", "")
    assert plan(p.text, [], prune=True).text == crlf
    bare = "[default]\nregion = eu-west-1"
    p = plan(bare, LISTING[:1])
    assert p.text.startswith(bare + "\n[profile Production.Admin]")  # no blank line added
    assert plan(p.text, [], prune=True).text == bare


def test_duplicates_and_damaged_generated_sections_are_stale() -> None:
    text = plan("", LISTING[:1]).text
    dup = text + "\n" + text.replace("[profile Production.Admin]", "[profile copy]")
    broken = text.replace(f"sso_account_id = {A}\n", "")
    assert actions(plan(dup, LISTING[:1])) == {"Production.Admin": "unchanged", "copy": "stale"}
    p = plan(broken, LISTING[:1], prune=True)
    assert pairs(p) == [("Production.Admin", "added"), ("Production.Admin", "pruned")]
    assert "sso_account_id or sso_role_name was removed" in str(p.changes)


def test_options_and_files_that_are_refused() -> None:
    with pytest.raises(UsageError, match="credd sets that key itself"):
        Options(extra=(("sso_role_name", "x"),))
    with pytest.raises(UsageError, match="not a region"):
        Options(region="eu west")
    with pytest.raises(ConfigError, match="not a usable config key"):
        Options(extra=(("bad key", "x"),))
    with pytest.raises(ConfigError, match="cannot be parsed"):
        plan("key = value before any section\n")


def test_the_diff_shows_the_change_and_masks_secrets() -> None:
    p = plan(USER_CONFIG, LISTING[:1])
    diff = unified_diff(USER_CONFIG, p.text, PATH)
    assert diff.startswith(f"--- {PATH}\n+++ {PATH} (after credd sso populate)\n@@")
    assert "+[profile Production.Admin]\n" in diff
    close = USER_CONFIG.replace("credd_generated = elsewhere\n", "aws_session_token = tok123456\n")
    diff = unified_diff(close, plan(close, LISTING[:1]).text, PATH)
    assert " aws_session_token = ****\n" in diff and "tok123456" not in diff
    assert unified_diff(USER_CONFIG, USER_CONFIG, PATH) == ""
    no_eol = unified_diff("[a]\nx = 1", "[a]\nx = 2", PATH)
    assert no_eol.count("\\ No newline at end of file") == 2


def test_a_profile_another_stands_on_keeps_its_name_when_the_template_changes() -> None:
    text = plan(USER_CONFIG, LISTING[:2]).text
    text += (
        "\n[profile mine]\nsource_profile = Production.Admin\nrole_arn = arn:aws:iam::1:role/x\n"
    )
    p = plan(text, LISTING[:2], names=NameTemplate("{account_id}.{role_name}"))
    assert actions(p) == {"Production.Admin": "unchanged", f"{A}.ReadOnly": "renamed"}
    assert "[profile mine]\nsource_profile = Production.Admin\n" in p.text


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"sso_session": None, "profile": None, **values})


def test_which_login_is_listed() -> None:
    session = {"sso_start_url": URL, "sso_region": "eu-west-1"}
    legacy = {"sso_start_url": URL, "sso_region": "eu-west-1", "sso_account_id": A}
    full = {
        "sso_sessions": {"corp": session},
        "profiles": {"b": {"sso_session": "corp"}, "a": {"sso_session": "corp"}, "old": legacy},
    }
    assert choose_login(_args(), full) == (CORP, "a")  # the only session; a's endpoints
    assert choose_login(_args(profile="old"), full) == (LEGACY, "old")
    with pytest.raises(UsageError, match="not both"):
        choose_login(_args(profile="old", sso_session="corp"), full)
    two = {**full, "sso_sessions": {"corp": session, "lab": session}}
    with pytest.raises(UsageError, match="several") as exc:
        choose_login(_args(), two)
    assert "--sso-session corp | lab" in str(exc.value)
    assert choose_login(_args(), {"profiles": {"old": legacy}}) == (LEGACY, "old")
    with pytest.raises(ConfigError, match="no IAM Identity Center login"):
        choose_login(_args(), {"profiles": {"plain": {"region": "eu-west-1"}}})
    with pytest.raises(ConfigError, match="no \\[sso-session lab\\]"):
        choose_login(_args(sso_session="lab"), full)
