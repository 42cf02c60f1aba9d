#!/usr/bin/env bash
# Installs the kiosk on Raspberry Pi OS bookworm 64-bit (Debian 12, arm64, Python 3.11) with a
# Coral USB Accelerator: everything install-cpu.sh does, plus the pinned Edge TPU runtime pairing
# of deploy/edgetpu-pins.sh (libedgetpu 16.0 rebuilt against TensorFlow 2.17.1 and the
# tflite_runtime 2.17.1 wheel, in the app's venv beside ai-edge-litert for the CPU), the udev
# rules, and last the doctor's Edge TPU probe. Safe to run again; DRY_RUN=1 prints the steps.
#
#   sudo deploy/install-rpi-coral-usb.sh [--max-frequency] [--trust-unpinned]
#
#   --max-frequency    libedgetpu1-max (faster; the accelerator gets hot) instead of -std
#   --trust-unpinned   use a download whose sha256 the pin file does not know (it is printed)
#
# Never Coral's apt libedgetpu1-std/-max 16.0: built against TensorFlow 2.5, it crashes with
# every TFLite runtime >= 2.12; if it is installed, this replaces it. Other boards and the
# M.2 / Mini PCIe Accelerator: deploy/install-edgetpu.sh. pycoral is never installed with pip
# (that name on the public index is an unrelated project).
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

edgetpu_parse_args "--max-frequency --trust-unpinned" \
  "usage: sudo deploy/install-rpi-coral-usb.sh [--max-frequency] [--trust-unpinned]" "$@"
need_root
edgetpu_detect_target
if [ "$EDGETPU_CODENAME" != bookworm ] || [ "$EDGETPU_ARCH" != arm64 ]; then
  cat >&2 <<MSG
error: this installer is for Raspberry Pi OS bookworm 64-bit (arm64); this is
$EDGETPU_CODENAME on $EDGETPU_ARCH. Use deploy/install-edgetpu.sh, which knows the other
supported systems. Nothing was changed.
MSG
  exit 1
fi
EDGETPU_ACCEL=usb
edgetpu_install
