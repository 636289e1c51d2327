"""``python -m credd.cli``: the same as the ``credd`` launcher."""

import sys

from credd.cli import main

sys.exit(main())
