"""`python -m revseg` works like the `revseg` command."""

import sys

from revseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
