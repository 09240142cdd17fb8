"""Write a sample transaction lake: the arguments of `revseg generate`.

python scripts/generate_transactions.py --output data/transactions --rows 1000000
"""

import sys

from revseg.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
