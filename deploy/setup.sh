#!/usr/bin/env bash
# Sets up this checkout on Debian, Ubuntu or Raspberry Pi OS: a virtual environment in .venv,
# the Python packages, and the verified models. Safe to run again.
#
#   deploy/setup.sh [--dev] [--mirror DIR]
#
#   --dev         also the test tools (pytest, ruff, vermin, Playwright) and, through apt,
#                 Chromium for the browser tests and a C compiler for the stand-in
#                 libedgetpu libraries (tests/standin.py)
#   --mirror DIR  take the model files from DIR instead of downloading them
#                 (or set TEACHABLE_MODEL_MIRROR)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
mirror="${TEACHABLE_MODEL_MIRROR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1 ;;
    --mirror) mirror="$2"; shift ;;
    *) echo "usage: deploy/setup.sh [--dev] [--mirror DIR]" >&2; exit 2 ;;
  esac
  shift
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "error: Python 3.9 or newer is needed ($python is $("$python" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating the virtual environment .venv"
  "$python" -m venv .venv || {
    echo "error: could not create a virtual environment: sudo apt install python3-venv" >&2
    exit 1
  }
fi
echo "== installing Python packages"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  if ! command -v chromium >/dev/null 2>&1 || ! command -v shellcheck >/dev/null 2>&1 \
      || ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    echo "== installing Chromium, shellcheck, systemd's analyzer and a C compiler (for the tests)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends \
        chromium fonts-noto-cjk shellcheck systemd gcc libc6-dev >/dev/null; }; then
      echo "warning: apt could not install them; the tests that need them will be skipped" >&2
    fi
  fi
fi
echo "== fetching and verifying the models"
.venv/bin/python -m server.models fetch ${mirror:+--mirror "$mirror"}
echo "== ready"
