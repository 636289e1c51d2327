"""``credd sso populate``: a profile in ``~/.aws/config`` for every account and role an IAM
Identity Center login reaches (see docs/sso.md, "Generate profiles").

The work is :func:`credd.sso.populate.populate`; this module picks the login and prints the
outcome (``--json``: machine-readable; ``--dry-run``: the diff).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from credd.cli.base import Subparsers, command, group
from credd.cli.io import Io
from credd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from credd.sso.populate import Outcome
    from credd.sso.settings import SsoTarget


def choose_login(args: argparse.Namespace, full: Mapping[str, Any]) -> tuple[SsoTarget, str | None]:
    """The login to list (from ``--sso-session``, ``--profile``, or the only one configured)
    and the profile whose endpoint settings the portal calls use."""
    from credd.sso.settings import profiles_using, resolve_profile, resolve_session, sso_profile_of

    if args.sso_session and args.profile:
        raise UsageError("give --sso-session NAME or --profile PROFILE, not both")
    if args.profile:
        target = resolve_profile(args.profile, full)
        return target, sso_profile_of(args.profile, full)
    target = resolve_session(args.sso_session, full) if args.sso_session else _only_login(full)
    users = profiles_using(target, full)
    return target, (users[0] if users else None)


def _only_login(full: Mapping[str, Any]) -> SsoTarget:
    from credd.sso.settings import resolve_profile, resolve_session

    sessions = sorted(full.get("sso_sessions", {}) or {})
    if len(sessions) == 1:
        return resolve_session(sessions[0], full)
    if sessions:
        raise UsageError(
            "several [sso-session] sections: which one?",
            hint="credd sso populate --sso-session " + " | ".join(sessions),
        )
    legacy: dict[str, SsoTarget] = {}
    for name, raw in sorted((full.get("profiles", {}) or {}).items()):
        if "sso_start_url" in raw and "sso_session" not in raw:
            try:
                found = resolve_profile(name, full)
            except ConfigError:
                continue
            legacy.setdefault(found.start_url, found)
    if len(legacy) == 1:
        return next(iter(legacy.values()))
    if legacy:
        raise UsageError(
            "profiles use several IAM Identity Center start URLs: which one?",
            hint="credd sso populate --profile PROFILE (a profile using that login)",
        )
    raise ConfigError(
        "the AWS config has no IAM Identity Center login to list",
        hint="add an [sso-session NAME] section (aws configure sso-session writes one) and "
        "log in with credd login --sso-session NAME",
    )


def _extra(pairs: list[str] | None) -> tuple[tuple[str, str], ...]:
    out = []
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _report(outcome: Outcome, io: Io) -> None:
    t = outcome.target
    what = f"sso-session {t.session_name}" if t.session_name else f"login {t.start_url}"
    io.say(f"{what}: {outcome.accounts} accounts, {len(outcome.listing)} roles")
    width = max((len(c.profile) for c in outcome.plan.changes), default=0)
    for change in outcome.plan.changes:
        if change.action == "unchanged":
            continue
        line = f"  {change.action:<9} {change.profile:<{width}}"
        if change.account_id:
            line += f"  {change.account_id} {change.role_name}"
        if change.previous:
            line += f" (was {change.previous})"
        if change.note:
            line += f" ({change.note})"
        io.say(line.rstrip())
    counts = {a: len(outcome.plan.of(a)) for a in ("added", "updated", "renamed", "pruned")}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    if outcome.dry_run:
        io.say(f"Dry run: {summary} in {outcome.path}; nothing written.")
    elif outcome.written:
        io.say(f"Wrote {outcome.path}: {summary}.")
    else:
        unchanged = len(outcome.plan.of("unchanged"))
        stale = len(outcome.plan.of("stale"))
        more = f"; {stale} stale" if stale else ""
        io.say(f"Nothing to change: {outcome.path} is up to date ({unchanged} profiles{more}).")
    if t.legacy and outcome.plan.of("added"):
        io.say(
            "Note: a legacy login (sso_start_url in each profile) cannot refresh its token; "
            "an [sso-session] can (docs/sso.md)."
        )


def cmd_sso_populate(args: argparse.Namespace, io: Io) -> int:
    """``credd sso populate``."""
    from credd.sso.generate import Options
    from credd.sso.naming import NameTemplate
    from credd.sso.populate import populate
    from credd.sso.settings import load_full_config

    target, profile = choose_login(args, load_full_config())
    options = Options(
        names=NameTemplate(args.name_template, args.prefix, target.session_name or _host(target)),
        region=args.region,
        manage=args.manage,
        prune=args.prune,
        extra=_extra(args.set),
    )
    outcome = populate(target, options, profile=profile, dry_run=args.dry_run)
    if args.json:
        body = outcome.to_json()
        if args.dry_run:
            body["diff"] = outcome.diff()
        io.json(body)
        return 0
    if args.dry_run and outcome.changed:
        io.stdout.write(outcome.diff())
    _report(outcome, io)
    if args.manage and outcome.written:
        io.say("Managed by credd (credd = true); reload a running daemon: kill -HUP <pid>")
    return 0


def _host(target: SsoTarget) -> str:
    """A legacy login's ``{sso_session}``: the first label of its start URL's host."""
    from urllib.parse import urlsplit

    return (urlsplit(target.start_url).hostname or "sso").split(".", 1)[0]


def register(sub: Subparsers) -> None:
    """``sso populate``."""
    from credd.sso.naming import DEFAULT_TEMPLATE, FIELDS

    children = group(
        sub,
        "sso",
        "IAM Identity Center: generate profiles for every account and role (populate)",
        description="IAM Identity Center (SSO) commands.",
    )
    p = command(
        children,
        "populate",
        cmd_sso_populate,
        "write a profile for every account and role the login reaches into the AWS config",
        description="List every account and role an IAM Identity Center login can reach and "
        "write one profile for each into the AWS config (comments and your own profiles are "
        "kept; generated profiles carry credd_generated). Uses the token in ~/.aws/sso/cache: "
        "log in first (credd login).",
    )
    p.add_argument("--sso-session", metavar="NAME", help="the login of [sso-session NAME]")
    p.add_argument(
        "--profile",
        metavar="PROFILE",
        help="the login PROFILE uses (for legacy profiles with sso_start_url)",
    )
    p.add_argument(
        "--prefix", default="", metavar="TEXT", help="put TEXT before every generated name"
    )
    p.add_argument(
        "--name-template",
        default=DEFAULT_TEMPLATE,
        metavar="TEMPLATE",
        help=f"profile names (default {DEFAULT_TEMPLATE.replace('%', '%%')}); fields: "
        + ", ".join(f"{{{f}}}" for f in FIELDS),
    )
    p.add_argument(
        "--region", metavar="REGION", help="region of the generated profiles (default: SSO region)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="also set KEY in every generated profile (e.g. services=corp, output=json)",
    )
    p.add_argument(
        "--manage", action="store_true", help="set credd = true: the daemon keeps them fresh"
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove generated profiles the login no longer reaches",
    )
    p.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output (docs/cli.md)")
