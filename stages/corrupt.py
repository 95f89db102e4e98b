"""DVC stage `corrupt`: Inject label noise into the training stems.

Runs `selfrefine corrupt` (see `python stages/corrupt.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["corrupt", *sys.argv[1:]], prog_name="stages/corrupt.py")
