"""``credd presign`` and ``credd console``: one-shot operations with a profile's credentials.

The work is in :mod:`credd.actions.presign` (choosing a signer that can honour the lifetime,
botocore's presigner) and :mod:`credd.actions.console` (federation sign-in URLs); these are
their commands.
"""

from __future__ import annotations

import argparse
import logging

from credd.cli.base import Subparsers, command
from credd.cli.io import Io
from credd.clock import SystemClock, isoformat_z
from credd.durations import format_duration
from credd.errors import UsageError

log = logging.getLogger(__name__)


def _targets(args: argparse.Namespace, io: Io) -> list[tuple[str, str]]:
    from credd.actions.presign import parse_target, read_targets

    if bool(args.target) == bool(args.from_file):
        raise UsageError("name one s3://BUCKET/KEY, or a list with --from-file (not both)")
    if args.target:
        return [parse_target(args.target)]
    if args.from_file == "-":
        return read_targets(io.stdin)
    try:
        with open(args.from_file, encoding="utf-8") as handle:
            return read_targets(handle)
    except OSError as exc:
        raise UsageError(f"cannot read {args.from_file}: {exc.strerror}") from None


def cmd_presign(args: argparse.Namespace, io: Io) -> int:
    from credd.actions import presign
    from credd.aws import config as awsconfig
    from credd.aws.clients import ClientFactory
    from credd.secrets.store import SecretStore

    clock = SystemClock()
    seconds = presign.parse_lifetime(args.expires)
    targets = _targets(args, io)
    name = args.profile or awsconfig.profile_from_env() or "default"
    signer = presign.choose_signer(
        name,
        use_session=args.session,
        config=awsconfig.load(),
        store=SecretStore(),
        daemon_credentials=io.client(args.socket).credentials,
    )
    lifetime, warning = signer.lifetime(seconds, clock.now(), cap=args.cap)
    if warning:
        io.warn(warning)
    client = ClientFactory().client(
        "s3", name, signer.credentials, region=args.region, signature_version="s3v4"
    )
    urls = presign.presign_all(client, targets, args.method, lifetime)
    log.info("presigned %d URL(s) for profile %s with %s", len(urls), name, signer.kind)
    now = clock.now()
    if args.json:
        docs = [u.to_json(now) | {"profile": name, "signed_with": signer.kind} for u in urls]
        io.json(docs[0] if args.target else docs, indent=1)
        return 0
    for u in urls:
        io.say(u.url)
    io.warn(
        f"{len(urls)} URL(s) valid until {isoformat_z(urls[-1].expires_at)} "
        f"({format_duration(lifetime)}), signed with {signer.kind} of profile {name}"
    )
    return 0


def cmd_console(args: argparse.Namespace, io: Io) -> int:
    from credd.actions import console
    from credd.aws import config as awsconfig
    from credd.aws.clients import ClientFactory

    name = args.profile or awsconfig.profile_from_env() or "default"
    config = awsconfig.load()
    creds, is_role = console.console_credentials(
        name,
        config=config,
        daemon_credentials=io.client(args.socket).credentials,
        clients=ClientFactory(),
    )
    url = console.federation_url()
    region = args.region or config.profiles.get(name, {}).get("region")
    token = console.signin_token(creds, url=url, duration=args.duration if is_role else None)
    link = console.login_url(token, url=url, dest=console.destination(args.destination, region))
    log.info("console sign-in URL made for profile %s", name)
    if args.print:
        io.say(link)
        return 0
    import webbrowser

    from credd.clock import SystemClock
    from credd.paths import ensure_private_dir, runtime_dir

    opened = console.open_signin(
        link,
        open_browser=io.open_browser or webbrowser.open,
        directory=ensure_private_dir(runtime_dir()),
        clock=SystemClock(),
    )
    if not opened:
        io.warn("no browser to open; the sign-in URL (valid 15 minutes):")
        io.say(link)
    return 0


def register(sub: Subparsers) -> None:
    """``presign``, ``console``."""
    p = command(
        sub,
        "presign",
        cmd_presign,
        "S3 presigned URLs that live as long as asked, or a clear refusal",
        description="Sign GET/PUT URLs for S3 objects with the credentials that can honour "
        "the lifetime (see docs/presign.md).",
        socket=True,
    )
    p.add_argument("target", nargs="?", metavar="s3://BUCKET/KEY", help="the object")
    p.add_argument("--from-file", metavar="LIST", help="one s3://BUCKET/KEY per line ('-': stdin)")
    p.add_argument("--expires", default="1h", help="lifetime, e.g. 7d, 36h, 90m (max 7d)")
    p.add_argument("--profile", help="the AWS profile (default: $AWS_PROFILE, else default)")
    p.add_argument("--method", choices=("GET", "PUT"), default="GET", help="HTTP method")
    p.add_argument("--region", help="the bucket's region (default: the profile's)")
    p.add_argument(
        "--cap",
        action="store_true",
        help="when the credentials expire sooner, sign for what remains (warned on stderr)",
    )
    p.add_argument(
        "--session",
        action="store_true",
        help="sign with the daemon's session credentials even where long-term keys exist",
    )
    p.add_argument("--json", action="store_true", help="URL and real expiry as JSON")

    p = command(
        sub,
        "console",
        cmd_console,
        "open the AWS console signed in as PROFILE (role and SSO profiles)",
        description="Sign in to the AWS console through the federation endpoint with the "
        "profile's session; see docs/console.md.",
        socket=True,
    )
    p.add_argument(
        "profile", nargs="?", metavar="PROFILE", help="the profile (default: $AWS_PROFILE)"
    )
    p.add_argument(
        "--print", action="store_true", help="print the sign-in URL instead of opening it"
    )
    p.add_argument("--region", help="the console's region (default: the profile's)")
    p.add_argument("--destination", metavar="PATH", help="console path to open, e.g. s3/home")
    p.add_argument(
        "--duration",
        type=int,
        metavar="SECONDS",
        help="console session length for role profiles (900..43200)",
    )
