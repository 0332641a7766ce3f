"""`python -m easyedit_detox ...`: the same command line as the `easyedit-detox` console script."""

import sys

from easyedit_detox.cli import main

if __name__ == "__main__":
    sys.exit(main())
