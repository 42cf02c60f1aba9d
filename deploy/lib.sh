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

# install_app [CONSTRAINTS]: with a pip constraints file (the Edge TPU installers' NumPy 1.x)
install_app() {
  step "installing the application into $APP_DIR"
  run mkdir -p "$APP_DIR"
  if [ "$SRC_DIR" != "$APP_DIR" ]; then
    run cp -a "$SRC_DIR/server" "$SRC_DIR/static" "$SRC_DIR/templates" "$SRC_DIR/deploy" \
      "$SRC_DIR/requirements.txt" "$APP_DIR/"
  fi
  step "creating the virtual environment and installing Python packages"
  local constraints=()
  if [ -n "${1:-}" ]; then
    constraints=(-c "$1")
  fi
  run python3 -m venv "$APP_DIR/.venv"
  run "$APP_DIR/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$APP_DIR/requirements.txt" "${constraints[@]}"
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

# ---- Downloads checked against a pinned sha256 ----

# fetch_verified URL SHA256 DEST: downloads URL into a temporary file beside DEST and moves it
# to DEST only when its sha256 is SHA256. With SHA256 "unknown" (no hash could be pinned) it
# prints the hash it saw and refuses unless TRUST_UNPINNED=1; a different hash always refuses.
fetch_verified() {
  local url=$1 want=$2 dest=$3 tmp got
  if [ "$want" != unknown ] && ! [[ $want =~ ^[0-9a-f]{64}$ ]]; then
    echo "error: the sha256 pinned for $url is neither 64 hex digits nor unknown: '$want'" >&2
    return 1
  fi
  if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '+ download %s -> %s (sha256 %s)\n' "$url" "$dest" "$want"
    return 0
  fi
  printf '+ download %s\n' "$url"
  tmp=$(mktemp "$dest.XXXXXX") || return 1
  if ! curl -fsSL --retry 3 -o "$tmp" "$url"; then
    rm -f "$tmp"
    echo "error: could not download $url" >&2
    return 1
  fi
  got=$(sha256sum "$tmp" | cut -d ' ' -f 1)
  if [ "$want" = unknown ]; then
    if [ "${TRUST_UNPINNED:-0}" != 1 ]; then
      rm -f "$tmp"
      cat >&2 <<MSG
error: no sha256 is pinned for $url
  (deploy/edgetpu-pins.sh says "unknown"); the file downloaded now has sha256
  $got
  Refusing to use it. Either pin it: run deploy/update-edgetpu-pins.sh on a machine you
  trust and copy deploy/edgetpu-pins.sh here; or accept the file as it is: run this again
  with TRUST_UNPINNED=1 (or --trust-unpinned).
MSG
      return 1
    fi
    echo "warning: using $url unpinned (TRUST_UNPINNED=1); its sha256 is $got" >&2
  elif [ "$got" != "$want" ]; then
    rm -f "$tmp"
    cat >&2 <<MSG
error: sha256 mismatch for $url
  pinned (deploy/edgetpu-pins.sh): $want
  downloaded:                      $got
  The file was not used. The release asset changed or the download was tampered with;
  check it before changing the pin (deploy/update-edgetpu-pins.sh rewrites the pins).
MSG
    return 1
  else
    echo "sha256 $got, as pinned"
  fi
  mv -f "$tmp" "$dest"
}

# ---- The Edge TPU runtime pairing (deploy/edgetpu-pins.sh) ----

EDGETPU_PINS_FILE=${EDGETPU_PINS_FILE:-$SRC_DIR/deploy/edgetpu-pins.sh}
EDGETPU_CACHE=${EDGETPU_CACHE:-/var/cache/teachable-edgetpu}
EDGETPU_TARGETS=() # "codename arch python-tag asset-suffix"
EDGETPU_PINS=()    # "kind key sha256 url"
EDGETPU_FLAVOR=std
EDGETPU_ACCEL=${EDGETPU_ACCEL:-auto}
KIOSK=1

edgetpu_target() { EDGETPU_TARGETS+=("$1 $2 $3 $4"); }
edgetpu_pin() { EDGETPU_PINS+=("$1 $2 $3 $4"); }

edgetpu_load_pins() {
  if [ "${#EDGETPU_PINS[@]}" = 0 ]; then
    # shellcheck source=deploy/edgetpu-pins.sh
    source "$EDGETPU_PINS_FILE"
  fi
}

# edgetpu_pin_get KIND KEY: sets PIN_SHA256 and PIN_URL
edgetpu_pin_get() {
  edgetpu_load_pins
  local entry kind key sha url
  for entry in "${EDGETPU_PINS[@]}"; do
    read -r kind key sha url <<<"$entry"
    if [ "$kind" = "$1" ] && [ "$key" = "$2" ]; then
      PIN_SHA256=$sha
      PIN_URL=$url
      return 0
    fi
  done
  echo "error: deploy/edgetpu-pins.sh pins no $1 for $2" >&2
  return 1
}

# edgetpu_parse_args "FLAGS THIS SCRIPT TAKES" USAGE ARGS...: sets EDGETPU_FLAVOR, EDGETPU_ACCEL,
# TRUST_UNPINNED and KIOSK; an unknown flag prints USAGE and exits 2
edgetpu_parse_args() {
  local allowed=$1 usage=$2 arg flag known
  shift 2
  for arg in "$@"; do
    known=0
    for flag in $allowed; do
      if [ "$arg" = "$flag" ]; then
        known=1
      fi
    done
    if [ "$known" = 0 ]; then
      echo "$usage" >&2
      exit 2
    fi
    case $arg in
      --max-frequency) EDGETPU_FLAVOR=max ;;
      --trust-unpinned) TRUST_UNPINNED=1 ;;
      --usb) EDGETPU_ACCEL=usb ;;
      --pcie) EDGETPU_ACCEL=pcie ;;
      --no-kiosk) KIOSK=0 ;;
    esac
  done
}

# os_release_field NAME: a field of /etc/os-release (OS_RELEASE=path overrides the file)
os_release_field() {
  sed -n "s/^$1=//p" "${OS_RELEASE:-/etc/os-release}" 2>/dev/null | head -n 1 | tr -d "\"'"
}

edgetpu_supported_list() {
  local entry codename arch tag suffix
  for entry in "${EDGETPU_TARGETS[@]}"; do
    read -r codename arch tag suffix <<<"$entry"
    if [ "$tag" = none ]; then
      tag="(no wheel pinned: libedgetpu only, the probe decides)"
    fi
    printf '    %-9s %-6s Python %s\n' "$codename" "$arch" "$tag"
  done
}

# Sets EDGETPU_CODENAME, EDGETPU_ARCH (amd64/arm64), EDGETPU_MACHINE (x86_64/aarch64),
# EDGETPU_PYTAG (of python3; PYTHON_TAG overrides), EDGETPU_WHEEL_TAG (the pinned tag, or none)
# and EDGETPU_SUFFIX; an unsupported distribution, machine or Python stops here, unchanged.
# ARCH (as `uname -m` or dpkg names it) overrides dpkg's architecture: a 64-bit kernel under a
# 32-bit Raspberry Pi OS is armhf, whatever `uname -m` says.
edgetpu_detect_target() {
  edgetpu_load_pins
  local id pretty entry codename arch tag suffix
  id=$(os_release_field ID)
  EDGETPU_DISTRO=$id
  pretty=$(os_release_field PRETTY_NAME)
  EDGETPU_CODENAME=$(os_release_field VERSION_CODENAME)
  EDGETPU_MACHINE=${ARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}
  case $EDGETPU_MACHINE in
    x86_64 | amd64) EDGETPU_ARCH=amd64 EDGETPU_MACHINE=x86_64 ;;
    aarch64 | arm64) EDGETPU_ARCH=arm64 EDGETPU_MACHINE=aarch64 ;;
    *) EDGETPU_ARCH=$EDGETPU_MACHINE ;;
  esac
  EDGETPU_PYTAG=${PYTHON_TAG:-$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null || echo none)}
  step "checking the system: ${pretty:-unknown distribution}, $EDGETPU_ARCH, Python $EDGETPU_PYTAG"
  EDGETPU_SUFFIX=""
  case $id in
    debian | raspbian | ubuntu)
      for entry in "${EDGETPU_TARGETS[@]}"; do
        read -r codename arch tag suffix <<<"$entry"
        if [ "$codename" = "$EDGETPU_CODENAME" ] && [ "$arch" = "$EDGETPU_ARCH" ]; then
          EDGETPU_WHEEL_TAG=$tag
          EDGETPU_SUFFIX=$suffix
        fi
      done ;;
  esac
  if [ -z "$EDGETPU_SUFFIX" ]; then
    cat >&2 <<MSG
error: no Edge TPU runtime is pinned for ${pretty:-this distribution} (ID=${id:-?},
VERSION_CODENAME=${EDGETPU_CODENAME:-?}) on $EDGETPU_ARCH. Supported (deploy/edgetpu-pins.sh):
  Debian 12 bookworm (and Raspberry Pi OS bookworm), Debian 13 trixie, Ubuntu 22.04 jammy and
  Ubuntu 24.04 noble, each on amd64 (x86-64) or arm64:
$(edgetpu_supported_list)
Nothing was changed. Without an Edge TPU: sudo deploy/install-cpu.sh
MSG
    exit 1
  fi
  if [ "$EDGETPU_WHEEL_TAG" != none ] && [ "$EDGETPU_WHEEL_TAG" != "$EDGETPU_PYTAG" ]; then
    cat >&2 <<MSG
error: on $EDGETPU_CODENAME $EDGETPU_ARCH the pinned tflite_runtime $EDGETPU_TFLITE_VERSION wheel is
for Python $EDGETPU_WHEEL_TAG (the distribution's python3), but python3 here is $EDGETPU_PYTAG.
Make the distribution's Python 3 the python3 on PATH, then run this again. Nothing was changed.
MSG
    exit 1
  fi
}

# Sets EDGETPU_ACCEL to usb, pcie or none unless a flag chose it (EDGETPU_ACCEL= overrides)
edgetpu_detect_accelerator() {
  step "looking for an Edge TPU (USB 1a6e:089a / 18d1:9302, PCIe 1ac1:089a)"
  if [ "$EDGETPU_ACCEL" = auto ]; then
    if lspci -n -d 1ac1:089a 2>/dev/null | grep -q .; then
      EDGETPU_ACCEL=pcie
    elif lsusb -d 1a6e:089a 2>/dev/null | grep -q . || lsusb -d 18d1:9302 2>/dev/null | grep -q .; then
      EDGETPU_ACCEL=usb
    else
      EDGETPU_ACCEL=none
    fi
  fi
  case $EDGETPU_ACCEL in
    pcie) echo "an M.2 / Mini PCIe Edge TPU: the runtime and the gasket driver will be installed" ;;
    usb) echo "a USB Accelerator: the runtime will be installed" ;;
    *) echo "no Edge TPU is plugged in: installing the runtime for a USB Accelerator (for an" \
      "M.2 / Mini PCIe one, fit it and run this again, or pass --pcie)" ;;
  esac
}

# installed_version PACKAGE: the version dpkg has installed, or nothing
installed_version() {
  { dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null || true; } \
    | sed -n 's/^installed //p'
}

# Coral's apt libedgetpu 16.0 is built against TensorFlow 2.5 and crashes with every runtime
# >= 2.12; a build of ours carries "tf" in its version (16.0tf2.17.1-1).
edgetpu_remove_coral_runtime() {
  step "replacing Coral's apt Edge TPU runtime and repository, where present"
  local pkg version found=()
  for pkg in libedgetpu1-std libedgetpu1-max; do
    version=$(installed_version "$pkg")
    case $version in
      "" | *tf*) ;;
      *)
        echo "$pkg $version is Coral's apt build (against TensorFlow 2.5; it crashes with any" \
          "TFLite runtime >= 2.12): removing it for libedgetpu $EDGETPU_LIBEDGETPU_VERSION"
        found+=("$pkg") ;;
    esac
  done
  if [ "${#found[@]}" -gt 0 ]; then
    run env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${found[@]}"
  fi
  # an earlier version of these installers added Coral's repository
  if [ -e /etc/apt/sources.list.d/coral-edgetpu.list ]; then
    echo "removing Coral's package repository, so that apt never brings libedgetpu 16.0 back"
    run rm -f /etc/apt/sources.list.d/coral-edgetpu.list /usr/share/keyrings/coral-edgetpu.gpg
  fi
  if [ "${#found[@]}" = 0 ]; then
    echo "none installed"
  fi
}

edgetpu_install_libedgetpu() {
  local pkg=libedgetpu1-$EDGETPU_FLAVOR deb
  step "installing the Edge TPU runtime $pkg $EDGETPU_LIBEDGETPU_VERSION (built against TensorFlow $EDGETPU_TFLITE_VERSION)"
  edgetpu_pin_get "libedgetpu-$EDGETPU_FLAVOR" "$EDGETPU_SUFFIX-$EDGETPU_ARCH"
  if [ "$(installed_version "$pkg")" = "$EDGETPU_LIBEDGETPU_VERSION" ]; then
    echo "$pkg $EDGETPU_LIBEDGETPU_VERSION is installed"
    return 0
  fi
  if [ "$EDGETPU_FLAVOR" = max ]; then
    echo "the maximum frequency runs faster and hotter: keep a USB Accelerator below 25 °C ambient"
    printf '+ echo "libedgetpu1-max libedgetpu/accepted-eula select true" | debconf-set-selections\n'
    if [ "${DRY_RUN:-0}" != 1 ]; then
      echo "libedgetpu1-max libedgetpu/accepted-eula select true" | debconf-set-selections
    fi
  fi
  deb="$EDGETPU_CACHE/${PIN_URL##*/}"
  run mkdir -p "$EDGETPU_CACHE"
  fetch_verified "$PIN_URL" "$PIN_SHA256" "$deb"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb"
}

secure_boot_enabled() {
  mokutil --sb-state 2>/dev/null | grep -q "SecureBoot enabled"
}

# The M.2 / Mini PCIe Accelerator's kernel driver, built by DKMS on the running kernel
# (KERNEL_RELEASE overrides `uname -r`)
edgetpu_install_gasket() {
  local kr=${KERNEL_RELEASE:-$(uname -r)} version deb
  step "installing the PCIe driver gasket-dkms $EDGETPU_GASKET_VERSION, built by DKMS on kernel $kr"
  edgetpu_pin_get gasket-dkms all
  version=$(installed_version gasket-dkms)
  if [ "$version" = "$EDGETPU_GASKET_VERSION" ] \
      && dkms status -m gasket -k "$kr" 2>/dev/null | grep -q installed; then
    echo "gasket-dkms $version is built and installed for $kr"
  else
    if [ -n "$version" ] && [ "$version" != "$EDGETPU_GASKET_VERSION" ]; then
      echo "gasket-dkms $version is installed (Coral's 1.0-18 does not build on kernels >= 6.4):" \
        "replacing it with $EDGETPU_GASKET_VERSION"
      run env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq gasket-dkms
    fi
    if ! apt_install dkms build-essential "linux-headers-$kr"; then
      cat >&2 <<MSG
error: the headers of the running kernel $kr could not be installed (linux-headers-$kr),
and DKMS builds the driver against them. Usually the running kernel is older than the ones apt
still carries: sudo apt full-upgrade && sudo reboot, then run this again. A kernel that is not
the distribution's needs its own headers, so that /lib/modules/$kr/build exists.
MSG
      return 1
    fi
    if secure_boot_enabled; then
      echo "Secure Boot is enabled: the kernel loads the driver only when DKMS's signing key" \
        "is enrolled (see below if loading fails)"
    fi
    deb="$EDGETPU_CACHE/${PIN_URL##*/}"
    run mkdir -p "$EDGETPU_CACHE"
    fetch_verified "$PIN_URL" "$PIN_SHA256" "$deb"
    if ! run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb"; then
      echo "error: the gasket driver did not build on kernel $kr; DKMS's log ends with:" >&2
      tail -n 20 /var/lib/dkms/gasket/1.0/build/make.log >&2 2>/dev/null || true
      echo "(all of it: /var/lib/dkms/gasket/1.0/build/make.log)" >&2
      return 1
    fi
  fi
  if ! run modprobe apex; then
    if secure_boot_enabled; then
      cat >&2 <<MSG
error: the kernel refused the apex module: Secure Boot is on and the module is signed with a
key the firmware does not trust. Enrol DKMS's key: sudo mokutil --import /var/lib/dkms/mok.pub
(choose a one-time password), reboot, pick "Enroll MOK" on the blue MokManager screen, then run
this again. Or turn Secure Boot off in the firmware setup.
MSG
    else
      echo "error: modprobe apex failed on kernel $kr; the kernel says: sudo dmesg | tail -n 20" >&2
    fi
    return 1
  fi
  if [ "${DRY_RUN:-0}" != 1 ] && ! ls /dev/apex_* >/dev/null 2>&1; then
    echo "warning: the apex driver is loaded but no /dev/apex_N appeared: is the card seated," \
      "and is its slot enabled in the firmware setup?" >&2
  fi
}

edgetpu_install_udev_rules() {
  step "installing the udev rules for the Edge TPU (USB: group plugdev; PCIe: group apex)"
  if ! getent group apex >/dev/null; then
    run groupadd --system apex
  fi
  run usermod -a -G apex "$SERVICE_USER"
  run install -m 0644 "$SRC_DIR/deploy/udev/99-coral-usb.rules" \
    "$SRC_DIR/deploy/udev/65-apex.rules" /etc/udev/rules.d/
  run udevadm control --reload-rules
  run udevadm trigger
}

edgetpu_install_wheel() {
  local whl
  step "installing tflite_runtime $EDGETPU_TFLITE_VERSION into $APP_DIR/.venv (the runtime libedgetpu was built with)"
  if [ "$EDGETPU_WHEEL_TAG" = none ]; then
    cat <<MSG
no tflite_runtime wheel is pinned for Python $EDGETPU_PYTAG on $EDGETPU_CODENAME (none is known
to be published for it by the builders pinned here): libedgetpu only. Whether ai-edge-litert can
drive this libedgetpu is untested; the Edge TPU probe below decides, in a child process.
MSG
    return 0
  fi
  edgetpu_pin_get tflite-runtime "$EDGETPU_WHEEL_TAG-$EDGETPU_MACHINE"
  if [ "$("$APP_DIR/.venv/bin/python" -c \
      'import importlib.metadata as m; print(m.version("tflite_runtime"))' 2>/dev/null)" \
      = "$EDGETPU_TFLITE_VERSION" ]; then
    echo "tflite_runtime $EDGETPU_TFLITE_VERSION is installed"
    return 0
  fi
  whl="$EDGETPU_CACHE/${PIN_URL##*/}"
  run mkdir -p "$EDGETPU_CACHE"
  fetch_verified "$PIN_URL" "$PIN_SHA256" "$whl"
  run "$APP_DIR/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$SRC_DIR/deploy/edgetpu-constraints.txt" "$whl"
}

# The last step: the doctor's probe tries the Edge TPU in a child process, as the service user.
# One process at a time can hold the accelerator, so the server stops while it runs.
edgetpu_run_doctor() {
  step "checking the Edge TPU: python -m server.doctor --probe-edgetpu"
  if systemd_running; then
    run systemctl stop teachable.service
  fi
  if ! run runuser -u "$SERVICE_USER" -- env -C "$APP_DIR" TEACHABLE_DATA_DIR="$DATA_DIR" \
      "$APP_DIR/.venv/bin/python" -m server.doctor --probe-edgetpu; then
    cat >&2 <<MSG
warning: the Edge TPU did not pass the doctor's probe (its output above says why and what to
fix). The kiosk runs on the CPU until the doctor's fixes are applied; check again with:
  sudo runuser -u $SERVICE_USER -- env -C $APP_DIR $APP_DIR/.venv/bin/python -m server.doctor --probe-edgetpu
MSG
  fi
  if systemd_running; then
    run systemctl start teachable.service
  fi
}

# edgetpu_install: everything after edgetpu_detect_target, for both Edge TPU installers
edgetpu_install() {
  local packages=(python3-venv python3-pip ca-certificates curl usbutils pciutils) pip_constraints=""
  if [ "$KIOSK" = 1 ] && [ "$EDGETPU_DISTRO" = ubuntu ]; then
    cat >&2 <<MSG
error: Ubuntu has Chromium only as a snap, and the kiosk browser unit runs cage with
/usr/bin/chromium from a .deb. Run this again with --no-kiosk (the server only; open
http://<this machine>:$PORT/ on the kiosk screen's browser). Nothing was changed.
MSG
    exit 1
  fi
  check_python
  if [ "$KIOSK" = 1 ]; then
    packages+=(chromium cage fonts-noto-cjk)
  fi
  apt_install "${packages[@]}"
  edgetpu_detect_accelerator
  edgetpu_remove_coral_runtime
  edgetpu_install_libedgetpu
  if [ "$EDGETPU_ACCEL" = pcie ]; then
    edgetpu_install_gasket
  fi
  create_users
  edgetpu_install_udev_rules
  if [ "$EDGETPU_WHEEL_TAG" != none ]; then
    pip_constraints="$SRC_DIR/deploy/edgetpu-constraints.txt"
  fi
  install_app "$pip_constraints"
  edgetpu_install_wheel
  fetch_models
  install_units "$KIOSK"
  start_without_systemd
  wait_for_server
  edgetpu_run_doctor
}
