"""The ``credd`` command: thin commands, each parse -> plain function -> exit code.

``credd get`` is dispatched before anything else is imported (no argparse, no boto3): it is
what ``credential_process`` runs on every SDK refresh, so it starts at interpreter speed.
Nothing else is imported here (not even ``__future__``): ``credd.cli`` is on that path too,
and tests/unit/test_getcmd.py pins what it loads. ``python -m credd.cli`` runs ``__main__.py``.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["get"]:
        from credd.cli.get import main as get_main

        return get_main(args[1:])
    from credd.cli.app import run

    return run(args)
