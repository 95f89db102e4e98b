#!/usr/bin/env bash
# One-stop set-up: installs everything into .venv (idempotent), then runs what you ask for.
#   ./setup.sh repro   # install, then `dvc repro` the whole pipeline on the embedded default dataset
#   ./setup.sh test    # install, then lint (ruff check, ruff format --check) and run the test suite
#   ./setup.sh         # install only
# Needs Python 3.11. Debian packages it needs (ffmpeg for museval, git for DVC, python3.11-venv, the soundfont
# of the sampled world, and for the tests chromium) are installed with apt-get when missing and we are root;
# otherwise it says what to install.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 is required (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v git >/dev/null 2>&1 || missing+=(git)
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3.11-venv)
# the tests load the audit report in headless Chromium
[ "${1:-}" = test ] && { command -v chromium >/dev/null 2>&1 || missing+=(chromium); }
# the sampled world (generate.engine: sampled) and its tests play songs from MuseScore General (MIT): installed
# when we are root, required when the tests or params.yaml ask for it
if [ ! -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ]; then
  if [ "$(id -u)" = 0 ] || [ "${1:-}" = test ] || grep -Eq '^ *engine: *sampled' params.yaml; then
    missing+=(musescore-general-soundfont-small)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing pinned dependencies into .venv (torch, timm, demucs, dvc, ...)"
  .venv/bin/python -m pip --version >/dev/null 2>&1 || "$PYTHON" -m venv --clear .venv
  .venv/bin/python -m pip install -q -c requirements.lock -r requirements.lock
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[test]"
  touch "$stamp"
fi
# the soundfont renderer of the sampled world; --no-deps: its one dependency, pyaudio, is for live playback only and
# needs PortAudio's headers to build
.venv/bin/python -c 'import tinysoundfont' 2>/dev/null || .venv/bin/python -m pip install -q --no-deps tinysoundfont==0.3.7
export PATH="$PWD/.venv/bin:$PATH"

case "${1:-}" in
  repro) shift; dvc repro "$@" ;;
  test) shift; ruff check . && ruff format --check . && python -m pytest "$@" ;;
  "") echo "setup: done; activate with 'source .venv/bin/activate'" ;;
  *) echo "usage: ./setup.sh [repro|test] [args...]" >&2; exit 2 ;;
esac
