# The one file that pins the Edge TPU runtime pairing the installers install: a libedgetpu
# rebuilt against TensorFlow 2.17.1, the tflite_runtime 2.17.1 wheel built from the same
# TensorFlow, and the PCIe driver. Sourced by deploy/lib.sh (which defines edgetpu_target and
# edgetpu_pin); deploy/update-edgetpu-pins.sh rewrites the sha256 column in place.
# shellcheck shell=bash disable=SC2034
#
# Why not Coral's own packages: Coral's apt libedgetpu1-std/-max 16.0 is built against
# TensorFlow 2.5 and crashes (SIGSEGV) with every TFLite runtime >= 2.12
# (google-coral/edgetpu#812, google-coral/libedgetpu#53), and its gasket-dkms 1.0-18 fails to
# build on kernels >= 6.4 (google-coral/edgetpu#785, #808). The installers never install them.
#
# sha256: release assets could not be downloaded where these pins were written. A hash given
# here was published by someone else (the comment above it says where) and is checked again by
# update-edgetpu-pins.sh; `unknown` means none was found. For an `unknown` pin the installers
# print the hash they saw and refuse to go on unless told to trust it (TRUST_UNPINNED=1 or
# --trust-unpinned); a hash that differs from its pin always refuses. On a machine with
# internet, deploy/update-edgetpu-pins.sh downloads every asset and fills in the hashes.
#
# Asset names: "seen" = the exact URL appears in public install scripts or guides; "inferred" =
# built from the release's naming scheme (libedgetpu1-{std,max}_VERSION.{bookworm,trixie,
# ubuntu22.04,ubuntu24.04}_{amd64,arm64}.deb) and not seen referenced anywhere. An inferred
# asset that does not exist makes update-edgetpu-pins.sh report it, and the installer stop at
# the download with curl's error.
#
# Python 3.12, 3.13 and Debian 13 (trixie), as far as is known:
#   * cp312 (Ubuntu 24.04): feranick/TFlite-builds v2.17.1 has cp312 wheels for aarch64 and
#     x86_64 (both seen). The x86_64 builds there may use CPU instructions older CPUs lack:
#     Frigate moved its cp311 x86_64 wheel to frigate-nvr/TFlite-builds because feranick's
#     crashed with an illegal instruction. No rebuilt cp312 x86_64 wheel is known; the probe
#     runs it in a child process, so a SIGILL there leaves the kiosk on the CPU, not down.
#   * cp310 (Ubuntu 22.04): the cp310 wheel names below are inferred (a cp310 aarch64 wheel of
#     2.17.1 is hosted by a third party, Nachtzuster/BirdNET-Pi release v0.1); unverified.
#   * cp313 (Debian 13 trixie's Python): no tflite_runtime 2.17.1 cp313 wheel is published by
#     feranick or Frigate that could be found; a third party (Nachtzuster/BirdNET-Pi release
#     v0.1) hosts cp313 wheels of unknown build. NumPy 1.x has no cp313 wheel, so a cp313
#     tflite_runtime would have to be built against NumPy 2 and deploy/edgetpu-constraints.txt
#     cannot apply. So on trixie the installers put in libedgetpu only (its trixie .deb exists
#     for arm64, seen; amd64 is inferred), keep ai-edge-litert, and leave the verdict to
#     `python -m server.doctor --probe-edgetpu`: whether ai-edge-litert can drive this
#     libedgetpu is untested, and the probe tries it in a child process.
#   * A newer pairing exists upstream (libedgetpu 16.0TF2.18.1 and 16.0TF2.19.1 releases, the
#     latter with a trixie arm64 .deb); no matching tflite_runtime 2.18/2.19 wheels from the
#     same builder were found, so they are not pinned.

EDGETPU_LIBEDGETPU_VERSION=16.0tf2.17.1-1 # the version dpkg reports for the pinned .deb
EDGETPU_TFLITE_VERSION=2.17.1             # tflite_runtime, built from the same TensorFlow
EDGETPU_GASKET_VERSION=1.0-18.4           # gasket-dkms, for the M.2 / Mini PCIe Accelerator

# Supported targets: VERSION_CODENAME, Debian architecture, the python3 the kiosk's venv uses
# (its wheel tag, or "none" where no wheel is pinned: libedgetpu only, behind the probe), and
# the suffix of the libedgetpu asset for that distribution.
#              codename  arch   python  libedgetpu suffix
edgetpu_target bookworm  arm64  cp311   bookworm    # Raspberry Pi OS / Debian 12
edgetpu_target bookworm  amd64  cp311   bookworm    # Debian 12
edgetpu_target trixie    arm64  none    trixie      # Debian 13, Python 3.13: behind the probe
edgetpu_target trixie    amd64  none    trixie      # Debian 13, Python 3.13: behind the probe
edgetpu_target jammy     amd64  cp310   ubuntu22.04 # Ubuntu 22.04
edgetpu_target jammy     arm64  cp310   ubuntu22.04 # Ubuntu 22.04
edgetpu_target noble     amd64  cp312   ubuntu24.04 # Ubuntu 24.04
edgetpu_target noble     arm64  cp312   ubuntu24.04 # Ubuntu 24.04

# edgetpu_pin KIND KEY SHA256 URL (one line each: update-edgetpu-pins.sh edits column 4)

# libedgetpu, standard frequency (the default)
# seen:
edgetpu_pin libedgetpu-std bookworm-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb
# inferred (Frigate installs the -max build of the same release for amd64):
edgetpu_pin libedgetpu-std bookworm-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.bookworm_amd64.deb
# seen:
edgetpu_pin libedgetpu-std trixie-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.trixie_arm64.deb
# inferred:
edgetpu_pin libedgetpu-std trixie-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.trixie_amd64.deb
# seen (arm64), inferred (amd64):
edgetpu_pin libedgetpu-std ubuntu22.04-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.ubuntu22.04_arm64.deb
edgetpu_pin libedgetpu-std ubuntu22.04-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.ubuntu22.04_amd64.deb
# seen (arm64), inferred (amd64):
edgetpu_pin libedgetpu-std ubuntu24.04-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.ubuntu24.04_arm64.deb
edgetpu_pin libedgetpu-std ubuntu24.04-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-std_16.0tf2.17.1-1.ubuntu24.04_amd64.deb

# libedgetpu, maximum frequency (--max-frequency: faster, and a USB Accelerator gets hot)
# seen, both: Frigate's docker/main/install_deps.sh installs these two. The two hashes were
# published next to these URLs in a Frigate-derived install_deps.sh (its repository could not
# be identified); not verified here.
edgetpu_pin libedgetpu-max bookworm-arm64 eab8aa4576b4dbf738135d8094f32270b24117f77147d25cbe0f49d0144d85f2 https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.bookworm_arm64.deb
edgetpu_pin libedgetpu-max bookworm-amd64 63fd00989d29160fa9894e115156a9abe456e88751fc9be89d26e4696200441b https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.bookworm_amd64.deb
# inferred:
edgetpu_pin libedgetpu-max trixie-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.trixie_arm64.deb
edgetpu_pin libedgetpu-max trixie-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.trixie_amd64.deb
edgetpu_pin libedgetpu-max ubuntu22.04-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.ubuntu22.04_arm64.deb
edgetpu_pin libedgetpu-max ubuntu22.04-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.ubuntu22.04_amd64.deb
edgetpu_pin libedgetpu-max ubuntu24.04-arm64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.ubuntu24.04_arm64.deb
# seen:
edgetpu_pin libedgetpu-max ubuntu24.04-amd64 unknown https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/libedgetpu1-max_16.0tf2.17.1-1.ubuntu24.04_amd64.deb

# tflite_runtime 2.17.1, per Python tag and machine
# seen: Frigate's aarch64 wheel, and its rebuilt x86_64 one (no illegal instruction on older CPUs)
edgetpu_pin tflite-runtime cp311-aarch64 unknown https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp311-cp311-linux_aarch64.whl
edgetpu_pin tflite-runtime cp311-x86_64 unknown https://github.com/frigate-nvr/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp311-cp311-linux_x86_64.whl
# seen; the aarch64 hash was published next to this URL in a third-party Raspberry Pi 5 install
# script (not verified here):
edgetpu_pin tflite-runtime cp312-aarch64 8e544b9001d713dec0c220626ded61e25d7e60b8485e3c78c9a2ff652dbfbd00 https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp312-cp312-linux_aarch64.whl
edgetpu_pin tflite-runtime cp312-x86_64 unknown https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp312-cp312-linux_x86_64.whl
# inferred:
edgetpu_pin tflite-runtime cp310-aarch64 unknown https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp310-cp310-linux_aarch64.whl
edgetpu_pin tflite-runtime cp310-x86_64 unknown https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-cp310-cp310-linux_x86_64.whl

# The PCIe / M.2 driver: feranick/gasket-driver (google/gasket-driver, archived, plus fixes
# for kernels >= 6.4, 6.8, 6.12 and 6.13), tag 1.0-18.4, as a DKMS .deb that builds the
# gasket and apex modules on the running kernel. Seen, and reported to build on Debian 13's
# 6.12 kernels (Proxmox 9) and TrueNAS's 6.12/6.18. Source: https://github.com/feranick/gasket-driver
# (the tag's commit could not be looked up here).
edgetpu_pin gasket-dkms all unknown https://github.com/feranick/gasket-driver/releases/download/1.0-18.4/gasket-dkms_1.0-18.4_all.deb
