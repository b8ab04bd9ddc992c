"""``python -m mmws``: the ``mmws`` command (see :mod:`mmws.cli`)."""

import sys

from mmws.cli import main

if __name__ == "__main__":
    sys.exit(main())
