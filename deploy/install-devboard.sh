#!/usr/bin/env bash
# The Coral Dev Board runs Mendel Linux 5 (Debian 10) with Python 3.7; this kiosk needs Python
# 3.9 or newer and its packages (Flask 3, NumPy, ai-edge-litert) have no Python 3.7 builds.
# This script says so and what to do instead; it changes nothing.
set -euo pipefail
cat <<'MSG'
The Coral Dev Board is not supported as the kiosk server.

Why: Mendel Linux 5 ships Python 3.7; the kiosk needs Python >= 3.9, and Coral's Edge TPU
Python packages for Mendel are built for its Python 3.7 only. Building a newer Python on the
board would still leave the Edge TPU runtime (libedgetpu for Mendel) untested with it.

What works instead:
  * a Raspberry Pi 4 or 5 with 64-bit Raspberry Pi OS (Debian 12) and a Coral USB
    Accelerator:            sudo deploy/install-rpi-coral-usb.sh
  * any x86-64 or arm64 Debian/Ubuntu machine, CPU only (MobileNet runs at ~15-30 fps on
    a recent CPU):          sudo deploy/install-cpu.sh
  * the Dev Board as a screen only: open http://<kiosk address>:5000/ in its browser.
MSG
exit 1
