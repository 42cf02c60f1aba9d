#!/usr/bin/env bash
# Installs the kiosk on any x86-64 or arm64 Debian/Ubuntu machine, CPU only: system packages,
# a service user, the app in /opt/teachable-kiosk with its virtual environment, verified models
# in /var/lib/teachable, and the systemd units (server, health check, Chromium kiosk).
# Safe to run again. DRY_RUN=1 prints every step without doing it.
#
#   sudo deploy/install-cpu.sh [--no-kiosk]
#
#   --no-kiosk   server only (a headless box that phones and other screens connect to)
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

kiosk=1
[ "${1:-}" = "--no-kiosk" ] && kiosk=0

need_root
check_python
packages=(python3-venv python3-pip ca-certificates curl)
if [ "$kiosk" = 1 ]; then
  packages+=(chromium cage fonts-noto-cjk)
fi
apt_install "${packages[@]}"
create_users
install_app
fetch_models
install_units "$kiosk"
start_without_systemd
wait_for_server
