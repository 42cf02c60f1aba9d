#!/usr/bin/env bash
# Installs the kiosk on Raspberry Pi OS / Debian 12 (arm64) with a Coral USB Accelerator:
# everything install-cpu.sh does, plus the Edge TPU runtime from Coral's own package
# repository and a udev rule for the accelerator. Safe to run again; DRY_RUN=1 prints the steps.
#
#   sudo deploy/install-rpi-coral-usb.sh [--max-frequency]
#
#   --max-frequency   libedgetpu1-max (faster, the accelerator gets hot) instead of -std
#
# pycoral is never installed with pip: the package of that name on the public index is an
# unrelated project. Coral's python3-pycoral exists only for Python <= 3.9; on Python 3.11 the
# kiosk loads the Edge TPU delegate (libedgetpu.so.1) through its TFLite runtime directly.
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

runtime=libedgetpu1-std
[ "${1:-}" = "--max-frequency" ] && runtime=libedgetpu1-max

need_root
check_python
if [ "$(uname -m)" != aarch64 ]; then
  echo "warning: $(uname -m) is not arm64; a 64-bit Raspberry Pi OS is recommended" >&2
fi
apt_install python3-venv python3-pip ca-certificates curl gnupg chromium cage fonts-noto-cjk
add_coral_repository
apt_install "$runtime"
if python3 -c 'import sys; sys.exit(sys.version_info >= (3, 10))'; then
  apt_install python3-pycoral  # Coral's own package, for Python <= 3.9 only
fi
install_udev_rule
create_users
install_app
fetch_models
step "checking the Edge TPU (plug the accelerator into a USB 3 port)"
run env -C "$APP_DIR" "$APP_DIR/.venv/bin/python" -m server.benchmark --tpu on \
  --data-dir "$DATA_DIR" --rounds 20 \
  || echo "warning: no Edge TPU answered; the kiosk will run on the CPU until one does" >&2
install_units 1
start_without_systemd
wait_for_server
