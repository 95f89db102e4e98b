"""DVC stage `index`: Validate and index every stem; write the noisy and clean label tables.

Runs `selfrefine index` (see `python stages/index.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["index", *sys.argv[1:]], prog_name="stages/index.py")
