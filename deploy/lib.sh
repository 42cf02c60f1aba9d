# Shared steps of the install scripts; sourced, not run. Every step says what it does, and
# DRY_RUN=1 prints the commands instead of running them.
# shellcheck shell=bash

APP_DIR=${APP_DIR:-/opt/teachable-kiosk}
DATA_DIR=${DATA_DIR:-/var/lib/teachable}
SERVICE_USER=${SERVICE_USER:-teachable}
KIOSK_USER=${KIOSK_USER:-teachable-kiosk}
PORT=${PORT:-5000}
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '\n== %s\n' "$*"; }

run() {
  printf '+ %s\n' "$*"
  if [ "${DRY_RUN:-0}" != 1 ]; then
    "$@"
  fi
}

need_root() {
  if [ "${DRY_RUN:-0}" != 1 ] && [ "$(id -u)" != 0 ]; then
    echo "error: run this as root (sudo $0), or DRY_RUN=1 $0 to see the steps" >&2
    exit 1
  fi
}

check_python() {
  step "checking Python (3.9 or newer is needed)"
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    echo "error: $(python3 --version 2>&1) is too old; this kiosk needs Python 3.9 or newer" >&2
    exit 1
  fi
  python3 --version
}

apt_install() {
  step "installing system packages: $*"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

create_users() {
  step "creating the service user $SERVICE_USER and the kiosk user $KIOSK_USER"
  for user in "$SERVICE_USER" "$KIOSK_USER"; do
    if id "$user" >/dev/null 2>&1; then
      echo "$user exists"
    else
      run useradd --system --create-home --home-dir "/var/lib/$user-home" \
        --shell /usr/sbin/nologin "$user"
    fi
  done
  # render and input come from udev, which minimal images and containers lack
  local group
  for group in video plugdev render input tty; do
    if ! getent group "$group" >/dev/null; then
      run groupadd --system "$group"
    fi
  done
  run usermod -a -G video,plugdev "$SERVICE_USER"
  run usermod -a -G video,render,input,tty "$KIOSK_USER"
}

install_app() {
  step "installing the application into $APP_DIR"
  run mkdir -p "$APP_DIR"
  if [ "$SRC_DIR" != "$APP_DIR" ]; then
    run cp -a "$SRC_DIR/server" "$SRC_DIR/static" "$SRC_DIR/templates" "$SRC_DIR/deploy" \
      "$SRC_DIR/requirements.txt" "$APP_DIR/"
  fi
  step "creating the virtual environment and installing Python packages"
  run python3 -m venv "$APP_DIR/.venv"
  run "$APP_DIR/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$APP_DIR/requirements.txt"
}

fetch_models() {
  step "fetching and verifying the models into $DATA_DIR/models"
  run mkdir -p "$DATA_DIR"
  local mirror=()
  if [ -n "${TEACHABLE_MODEL_MIRROR:-}" ]; then
    mirror=(--mirror "$TEACHABLE_MODEL_MIRROR")
  fi
  run env -C "$APP_DIR" "$APP_DIR/.venv/bin/python" -m server.models fetch \
    --data-dir "$DATA_DIR" "${mirror[@]}"
  run chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
}

# install_units [0]: with 0, the kiosk browser unit is installed but left disabled (--no-kiosk)
install_units() {
  step "installing the systemd units (server, health check, kiosk browser)"
  local kiosk=${1:-1} unit
  for unit in teachable.service teachable-healthcheck.service teachable-healthcheck.timer \
      teachable-kiosk.service; do
    run install -m 0644 "$SRC_DIR/deploy/systemd/$unit" "/etc/systemd/system/$unit"
  done
  if [ ! -f /etc/default/teachable ]; then
    run install -m 0644 "$SRC_DIR/deploy/teachable.default" /etc/default/teachable
    run sed -i "s/^TEACHABLE_PORT=.*/TEACHABLE_PORT=$PORT/" /etc/default/teachable
  fi
  if systemd_running; then
    run systemctl daemon-reload
    run systemctl enable --now teachable.service teachable-healthcheck.timer
    if [ "$kiosk" = 1 ]; then
      run systemctl enable --now teachable-kiosk.service
    else
      run systemctl disable --now teachable-kiosk.service
    fi
  else
    echo "systemd is not running here (a chroot or container): enabling for the next boot"
    run systemctl enable teachable.service teachable-healthcheck.timer
    if [ "$kiosk" = 1 ]; then
      run systemctl enable teachable-kiosk.service
    else
      run systemctl disable teachable-kiosk.service
    fi
  fi
}

systemd_running() {
  [ -d /run/systemd/system ] || [ "${DRY_RUN:-0}" = 1 ]
}

start_without_systemd() {
  step "starting the server directly, as its unit would (no systemd here)"
  if [ "${DRY_RUN:-0}" = 1 ] || systemd_running; then
    return 0
  fi
  printf '+ runuser -u %s -- %s -m server (in the background)\n' "$SERVICE_USER" \
    "$APP_DIR/.venv/bin/python"
  (cd "$APP_DIR" && TEACHABLE_DATA_DIR="$DATA_DIR" setsid runuser -u "$SERVICE_USER" -- \
    "$APP_DIR/.venv/bin/python" -m server --host 0.0.0.0 --port "$PORT" \
    >"$DATA_DIR/server.log" 2>&1 &)
}

install_udev_rule() {
  step "installing the udev rule for the Coral USB Accelerator"
  run install -m 0644 "$SRC_DIR/deploy/udev/99-coral-usb.rules" /etc/udev/rules.d/
  run udevadm control --reload-rules
  run udevadm trigger
}

add_coral_repository() {
  step "adding Coral's package repository (the only source of the Edge TPU runtime)"
  run install -d -m 0755 /usr/share/keyrings
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor > /usr/share/keyrings/coral-edgetpu.gpg"
  else
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
      | gpg --dearmor --yes -o /usr/share/keyrings/coral-edgetpu.gpg
  fi
  local line="deb [signed-by=/usr/share/keyrings/coral-edgetpu.gpg] https://packages.cloud.google.com/apt coral-edgetpu-stable main"
  printf '+ echo "%s" > /etc/apt/sources.list.d/coral-edgetpu.list\n' "$line"
  if [ "${DRY_RUN:-0}" != 1 ]; then
    echo "$line" > /etc/apt/sources.list.d/coral-edgetpu.list
  fi
}

wait_for_server() {
  step "waiting for the server to answer on http://127.0.0.1:$PORT/healthz"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "+ curl -fsS http://127.0.0.1:$PORT/healthz (up to 120 s)"
    return 0
  fi
  for _ in $(seq 120); do
    # quiet while the server is still starting; the answer is printed once it comes
    if curl -fsS "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
      echo
      echo "The kiosk is running: http://127.0.0.1:$PORT/"
      return 0
    fi
    sleep 1
  done
  curl -fsS "http://127.0.0.1:$PORT/healthz" || true
  if systemd_running; then
    echo "error: the server did not answer; see: journalctl -u teachable.service" >&2
  else
    echo "error: the server did not answer; its log, $DATA_DIR/server.log, ends with:" >&2
    tail -n 20 "$DATA_DIR/server.log" >&2 || true
  fi
  return 1
}
