"""DVC stage `generate`: Write the embedded synthetic multitrack set.

Runs `selfrefine generate` (see `python stages/generate.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["generate", *sys.argv[1:]], prog_name="stages/generate.py")
