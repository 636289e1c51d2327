"""Profile names for ``credd sso populate``: a template, sanitising, and collisions.

Pure functions, no I/O. A name is ``prefix + template`` with each field's value reduced to
characters that are safe in a profile name everywhere it is typed or passed (shells, s3fs's
``profile=``, ``AWS_PROFILE``, credd's own ``NAME-credd`` file sections): ASCII letters,
digits, ``.``, ``_`` and ``-``. Accents are dropped (``é`` -> ``e``), every other run of
characters becomes one ``-``.

Collisions are resolved without looking at the order the portal listed things in. Each pair
(account, role) has the candidates

    BASE, BASE-ACCOUNTID, BASE-ACCOUNTID-ROLE, BASE-ACCOUNTID-ROLE-2, -3, ...

and gets the first that is free: not the name of a profile credd did not generate for this
login (a hand-written one, one from the credentials file, one generated for another login,
``default``), not given to another pair, and not wanted by another pair at the same step (two
accounts both named "Production" both get their account id; neither keeps the bare name).
Numbered names, only reached when two roles sanitise alike, go in (account id, role) order.
A name once given stays as long as it is still one of the pair's candidates, so a new account
with the same name never renames the profiles people already use.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from credd.errors import UsageError

DEFAULT_TEMPLATE = "{account_name}.{role_name}"
FIELDS = ("account_name", "account_id", "role_name", "sso_session")
#: Room for credd's ``NAME-credd`` credentials-file section within its 128-character limit.
MAX_NAME = 120
RESERVED = frozenset({"default"})

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")
_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9._-]*$")
_ENDS = "-."
_NUMBERED = re.compile(r"-([2-9]|[1-9][0-9]{1,5})$")


@dataclass(frozen=True, order=True)
class Assignment:
    """One role in one account that the login can reach (what the portal lists)."""

    account_id: str
    role_name: str
    account_name: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.account_id, self.role_name)


def sanitise(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9._-]``: accents dropped, other runs of characters turned
    into one ``-``, no ``-`` or ``.`` at either end. May be empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _DASHES.sub("-", _UNSAFE.sub("-", ascii_text)).strip(_ENDS)


def _trim(name: str, room: int) -> str:
    return name[:room].rstrip(_ENDS) if len(name) > room else name


@dataclass(frozen=True)
class NameTemplate:
    """``--prefix`` and ``--name-template``, checked once."""

    template: str = DEFAULT_TEMPLATE
    prefix: str = ""
    sso_session: str = ""

    def __post_init__(self) -> None:
        if not _SAFE_LITERAL.match(self.prefix):
            raise UsageError(
                f"--prefix {self.prefix!r} has characters that are not safe in a profile name",
                hint="use letters, digits, '.', '_' or '-'",
            )
        used = []
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise UsageError(f"--name-template {self.template!r}: {exc}") from None
        for literal, field, spec, conversion in parsed:
            if not _SAFE_LITERAL.match(literal):
                raise UsageError(
                    f"--name-template {self.template!r}: {literal!r} is not safe in a profile name",
                    hint="between the fields use only letters, digits, '.', '_' or '-'",
                )
            if field is None:
                continue
            if field not in FIELDS or spec or conversion:
                raise UsageError(
                    f"--name-template {self.template!r}: unknown field {{{field}}}",
                    hint="fields: " + ", ".join(f"{{{f}}}" for f in FIELDS),
                )
            used.append(field)
        if not used:
            raise UsageError(
                f"--name-template {self.template!r} has no field",
                hint="e.g. {account_name}.{role_name}",
            )

    def values(self, pair: Assignment) -> dict[str, str]:
        return {
            "account_name": sanitise(pair.account_name) or pair.account_id,
            "account_id": pair.account_id,
            "role_name": sanitise(pair.role_name) or "role",
            "sso_session": sanitise(self.sso_session) or "sso",
        }

    def base(self, pair: Assignment) -> str:
        """The name before collisions are resolved (never empty)."""
        name = self.prefix + self.template.format(**self.values(pair))
        name = _DASHES.sub("-", name).strip(_ENDS) or pair.account_id
        return _trim(name, MAX_NAME)

    def candidate(self, pair: Assignment, number: int) -> str:
        """The ``number``-th name ``pair`` may get (0: the base; then with its account id,
        with account id and role, then numbered from 2)."""
        base = self.base(pair)
        if number == 0:
            return base
        suffix = f"-{pair.account_id}"
        if number >= 2:
            suffix += "-" + self.values(pair)["role_name"]
        if number >= 3:
            suffix += f"-{number - 1}"
        return _trim(base, MAX_NAME - len(suffix)) + suffix

    def candidates(self, pair: Assignment) -> Iterator[str]:
        """The names ``pair`` may get, best first (endless)."""
        number = 0
        while True:
            yield self.candidate(pair, number)
            number += 1

    def is_candidate(self, name: str, pair: Assignment) -> bool:
        if name in (self.candidate(pair, n) for n in range(3)):
            return True
        tail = _NUMBERED.search(name)
        return tail is not None and name == self.candidate(pair, int(tail.group(1)) + 1)


def assign_names(
    pairs: Iterable[Assignment],
    template: NameTemplate,
    *,
    taken: Collection[str] = (),
    current: Mapping[tuple[str, str], str] | None = None,
) -> dict[tuple[str, str], str]:
    """A unique, free name for every pair (keyed by (account id, role name)); see the module
    text. ``taken``: names that belong to someone else; ``current``: the names pairs had from
    an earlier run. The result depends only on these, not on the order of ``pairs``."""
    unique = sorted({p.key: p for p in pairs}.values())
    blocked = set(taken) | RESERVED
    names: dict[tuple[str, str], str] = {}
    claimed: set[str] = set()
    for pair in unique:  # an earlier name stays while it is still one of the pair's own
        old = (current or {}).get(pair.key)
        if old and old not in blocked and old not in claimed and template.is_candidate(old, pair):
            names[pair.key] = old
            claimed.add(old)
    pending = [p for p in unique if p.key not in names]
    level = 0
    while pending:
        wanted = {p.key: template.candidate(p, level) for p in pending}
        shared = Counter(wanted.values())
        rest = []
        for pair in pending:
            name = wanted[pair.key]
            # a name several pairs want at the same step goes to none of them (numbered
            # names, where two roles sanitised alike meet, go in sorted order instead)
            if (shared[name] == 1 or level >= 3) and name not in blocked and name not in claimed:
                names[pair.key] = name
                claimed.add(name)
            else:
                rest.append(pair)
        pending = rest
        level += 1
    return names
