#!/usr/bin/env bash
# Installs the kiosk with a Coral Edge TPU on Debian 12 (bookworm) / 13 (trixie) or Ubuntu
# 22.04 (jammy) / 24.04 (noble), x86-64 or arm64, with a USB Accelerator or an M.2 / Mini PCIe
# one: everything install-cpu.sh does, plus the pinned Edge TPU runtime pairing of
# deploy/edgetpu-pins.sh (libedgetpu rebuilt against TensorFlow 2.17.1, the tflite_runtime
# 2.17.1 wheel in the app's venv beside ai-edge-litert), for PCIe the gasket driver built by
# DKMS on the running kernel, the udev rules, and last the doctor's Edge TPU probe. Safe to
# run again; DRY_RUN=1 prints the steps. docs/EDGETPU.md has the table of what is verified.
#
#   sudo deploy/install-edgetpu.sh [--usb | --pcie] [--max-frequency] [--trust-unpinned] [--no-kiosk]
#
#   --usb / --pcie     which accelerator (default: the one plugged in; none found: USB)
#   --max-frequency    libedgetpu1-max (faster; a USB Accelerator gets hot) instead of -std
#   --trust-unpinned   use a download whose sha256 the pin file does not know (it is printed)
#   --no-kiosk         server only, no kiosk browser on this machine's screen (needed on
#                      Ubuntu, whose Chromium is a snap the kiosk unit cannot run)
#
# Never Coral's apt libedgetpu 16.0 (built against TensorFlow 2.5, it crashes with every TFLite
# runtime >= 2.12) nor its gasket-dkms 1.0-18 (does not build on kernels >= 6.4): installed
# ones are replaced. On Debian 13 (Python 3.13) no tflite_runtime wheel is pinned: libedgetpu
# only, and the probe decides whether the Edge TPU is used.
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

edgetpu_parse_args "--usb --pcie --max-frequency --trust-unpinned --no-kiosk" \
  "usage: sudo deploy/install-edgetpu.sh [--usb | --pcie] [--max-frequency] [--trust-unpinned] [--no-kiosk]" \
  "$@"
need_root
edgetpu_detect_target
edgetpu_install
