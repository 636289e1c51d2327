"""``python -m credd_sandbox``: see :mod:`credd_sandbox.runner`."""

from credd_sandbox.runner import main

raise SystemExit(main())
