"""Names of generated SSO profiles (credd.sso.naming): sanitising, templates, and collisions
resolved the same way whatever order the portal lists things in."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credd.errors import UsageError
from credd.sso.naming import MAX_NAME, Assignment, NameTemplate, assign_names, sanitise

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
A, B, C = "111111111111", "222222222222", "333333333333"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Production", "Production"),
        ("Data Science (Prod)", "Data-Science-Prod"),
        ("Sandbox Café", "Sandbox-Cafe"),
        ("  -- odd / name --  ", "odd-name"),
        ("Admin+Ops@team", "Admin-Ops-team"),
        ("データ", ""),
        ("a.b_c-d", "a.b_c-d"),
        (".hidden.", "hidden"),
    ],
)
def test_sanitise(raw: str, clean: str) -> None:
    assert sanitise(raw) == clean


def test_default_names_and_fallbacks() -> None:
    t = NameTemplate()
    assert t.base(Assignment(A, "AdministratorAccess", "Production")) == (
        "Production.AdministratorAccess"
    )
    # an account name with nothing safe in it: the account id stands in
    assert t.base(Assignment(A, "Admin", "データ")) == f"{A}.Admin"
    t = NameTemplate(
        "{sso_session}-{account_id}-{role_name}", prefix="corp-", sso_session="my corp"
    )
    assert t.base(Assignment(A, "Admin", "x")) == f"corp-my-corp-{A}-Admin"
    long = NameTemplate().base(Assignment(A, "R" * 60, "N" * 200))
    assert len(long) == MAX_NAME and SAFE.match(long)


@pytest.mark.parametrize(
    ("template", "prefix", "says"),
    [
        ("{account}.{role_name}", "", "unknown field {account}"),
        ("{account_name} {role_name}", "", "' ' is not safe"),
        ("{account_name!r}", "", "unknown field"),
        ("{account_name:>10}", "", "unknown field"),
        ("plain", "", "has no field"),
        ("{account_name", "", "--name-template"),
        ("{role_name}", "my prefix", "--prefix"),
    ],
)
def test_bad_templates_are_clear_errors(template: str, prefix: str, says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)):
        NameTemplate(template, prefix)


def test_collisions_get_the_account_id_and_hand_written_names_are_never_taken() -> None:
    pairs = [
        Assignment(A, "Admin", "Production"),
        Assignment(B, "Admin", "Production"),  # same account name: both get their id
        Assignment(A, "ReadOnly", "Production"),
        Assignment(C, "Admin", "Sandbox"),
    ]
    names = assign_names(pairs, NameTemplate(), taken={"Production.ReadOnly", "Sandbox.Admin"})
    assert names == {
        (A, "Admin"): f"Production.Admin-{A}",
        (B, "Admin"): f"Production.Admin-{B}",
        (A, "ReadOnly"): f"Production.ReadOnly-{A}",
        (C, "Admin"): f"Sandbox.Admin-{C}",
    }
    # a template without the role: roles of one account are told apart by it
    names = assign_names(pairs[:3], NameTemplate("{account_name}"), taken=())
    assert names == {
        (A, "Admin"): f"Production-{A}-Admin",
        (B, "Admin"): f"Production-{B}",
        (A, "ReadOnly"): f"Production-{A}-ReadOnly",
    }
    # even every candidate with a suffix taken: numbered, never a taken one
    taken = {"Sandbox.Admin", f"Sandbox.Admin-{C}", f"Sandbox.Admin-{C}-Admin"}
    assert assign_names(pairs[3:], NameTemplate(), taken=taken) == {
        (C, "Admin"): f"Sandbox.Admin-{C}-Admin-2"
    }
    assert assign_names([Assignment(A, "x", "default")], NameTemplate("{account_name}")) == {
        (A, "x"): f"default-{A}"
    }


def test_a_name_once_given_stays_when_a_second_account_with_that_name_appears() -> None:
    first = assign_names([Assignment(A, "Admin", "Production")], NameTemplate())
    assert first == {(A, "Admin"): "Production.Admin"}
    later = [Assignment(A, "Admin", "Production"), Assignment(B, "Admin", "Production")]
    names = assign_names(later, NameTemplate(), current=first)
    assert names == {(A, "Admin"): "Production.Admin", (B, "Admin"): f"Production.Admin-{B}"}
    # a name the template no longer gives is not kept (the profile is renamed)
    renamed = assign_names(later[:1], NameTemplate("{account_id}.{role_name}"), current=first)
    assert renamed == {(A, "Admin"): f"{A}.Admin"}


accounts = st.sampled_from([A, B, C, "444444444444", "555555555555"])
texts = st.text(alphabet=st.sampled_from(list("abAB é.-_ ()/+データ0")), min_size=0, max_size=12)
pair_lists = st.lists(
    st.builds(Assignment, accounts, texts.filter(bool), texts), min_size=0, max_size=14
)
templates = st.sampled_from(
    ["{account_name}.{role_name}", "{account_name}", "{role_name}", "{account_id}-{role_name}"]
)


@settings(max_examples=300, deadline=None)
@given(pairs=pair_lists, template=templates, taken=st.sets(texts, max_size=5), seed=st.integers())
def test_names_are_unique_safe_free_and_independent_of_order(
    pairs: list[Assignment], template: str, taken: set[str], seed: int
) -> None:
    # one account has one name: the portal never lists an account under two names
    named: dict[str, str] = {}
    pairs = [
        Assignment(p.account_id, p.role_name, named.setdefault(p.account_id, p.account_name))
        for p in pairs
    ]
    t = NameTemplate(template)
    names = assign_names(pairs, t, taken=taken)
    assert set(names) == {p.key for p in pairs}
    assert len(set(names.values())) == len(names)
    for name in names.values():
        assert SAFE.match(name) and len(name) <= MAX_NAME
        assert name not in taken and name != "default"
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    assert assign_names(shuffled + pairs[:2], t, taken=taken) == names
    # a second run, knowing the names it gave, gives the same ones
    assert assign_names(pairs, t, taken=taken, current=names) == names


@settings(max_examples=200, deadline=None)
@given(old=pair_lists, new=pair_lists, template=templates)
def test_names_already_given_survive_new_pairs(
    old: list[Assignment], new: list[Assignment], template: str
) -> None:
    named: dict[str, str] = {}
    fix = [
        Assignment(p.account_id, p.role_name, named.setdefault(p.account_id, p.account_name))
        for p in old + new
    ]
    old, both = fix[: len(old)], fix
    t = NameTemplate(template)
    first = assign_names(old, t)
    later = assign_names(both, t, current=first)
    assert {k: later[k] for k in first} == first


@settings(max_examples=120, deadline=None)
@given(text=st.text(max_size=40))
def test_sanitise_gives_safe_text_and_is_idempotent(text: str) -> None:
    clean = sanitise(text)
    assert clean == "" or SAFE.match(clean)
    assert "--" not in clean and not clean.startswith(("-", ".")) and not clean.endswith(("-", "."))
    assert sanitise(clean) == clean
