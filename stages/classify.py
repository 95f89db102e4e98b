"""DVC stage `classify`: Mix-train the instrument classifier of one refinement round (1, 2 or clean).

Runs `selfrefine classify` (see `python stages/classify.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["classify", *sys.argv[1:]], prog_name="stages/classify.py")
