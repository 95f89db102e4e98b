"""DVC stage `refine`: Relabel every training stem with a round's classifier (1, 2 or clean).

Runs `selfrefine refine` (see `python stages/refine.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["refine", *sys.argv[1:]], prog_name="stages/refine.py")
