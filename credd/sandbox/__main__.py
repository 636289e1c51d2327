"""``python -m credd.sandbox``: see :mod:`credd.sandbox.runner`."""

from credd.sandbox.runner import main

raise SystemExit(main())
