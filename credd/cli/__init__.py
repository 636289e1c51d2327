"""The ``credd`` command: thin commands, each parse -> plain function -> exit code.

``credd get`` is dispatched before anything else is imported (no argparse, no boto3): it is
what ``credential_process`` runs on every SDK refresh, so it starts at interpreter speed.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["get"]:
        from credd.cli.get import main as get_main

        return get_main(args[1:])
    from credd.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
