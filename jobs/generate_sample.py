"""spark-submit entry point for the sample lake: the arguments of `revseg generate`."""

import sys

from revseg.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
