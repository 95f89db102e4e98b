"""DVC stage `train`: Train a separator (demucs or xumx) on the label table separate.labels picks.

Runs `selfrefine train` (see `python stages/train.py --help`).
"""

import sys

from selfrefine.cli import app

if __name__ == "__main__":
    app(["train", *sys.argv[1:]], prog_name="stages/train.py")
