"""DVC stage `evaluate`: Separate the clean test songs with both separators and score SDR.

Runs `selfrefine evaluate` (see `python stages/evaluate.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["evaluate", *sys.argv[1:]], prog_name="stages/evaluate.py")
