#!/usr/bin/env bash
# Run on a machine with internet: downloads every asset deploy/edgetpu-pins.sh pins, computes
# its sha256 and writes it into the pin file in place, where the pin says "unknown". A hash that
# differs from one already pinned is reported and left alone unless --replace-changed is given
# (an asset replaced upstream deserves a look first). DRY_RUN=1 prints what it would do.
#
#   deploy/update-edgetpu-pins.sh [--replace-changed]
#
# EDGETPU_PINS_FILE=path updates another copy of the pin file. Exits 1 when an asset could not
# be downloaded or a changed hash was left alone; every other pin is still written.
set -euo pipefail
# shellcheck source=deploy/lib.sh
source "$(dirname "$0")/lib.sh"

replace_changed=0
case "${1:-}" in
  "") ;;
  --replace-changed) replace_changed=1 ;;
  *) echo "usage: deploy/update-edgetpu-pins.sh [--replace-changed]" >&2; exit 2 ;;
esac

edgetpu_load_pins
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
written=0 problems=0
for entry in "${EDGETPU_PINS[@]}"; do
  read -r kind key old url <<<"$entry"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '+ download %s, write its sha256 for %s %s (now %s) into %s\n' \
      "$url" "$kind" "$key" "$old" "$EDGETPU_PINS_FILE"
    continue
  fi
  if ! curl -fsSL --retry 3 -o "$tmp/asset" "$url"; then
    echo "error: could not download $url (no such release asset?); $kind $key stays $old" >&2
    problems=$((problems + 1))
    continue
  fi
  new=$(sha256sum "$tmp/asset" | cut -d ' ' -f 1)
  if [ "$new" = "$old" ]; then
    echo "$kind $key: $new, as pinned"
    continue
  fi
  if [ "$old" != unknown ] && [ "$replace_changed" != 1 ]; then
    echo "error: $kind $key is now $new, pinned $old: left alone (--replace-changed writes it)" >&2
    problems=$((problems + 1))
    continue
  fi
  # the line's fourth column; dots in the key are literal
  space='[[:space:]]\+'
  sed -i "s|^\(edgetpu_pin$space$kind$space${key//./\\.}$space\)[^[:space:]]\+|\1$new|" \
    "$EDGETPU_PINS_FILE"
  echo "$kind $key: $new (was $old)"
  written=$((written + 1))
done
if [ "${DRY_RUN:-0}" != 1 ]; then
  echo "$written hashes written into $EDGETPU_PINS_FILE; $problems problems"
fi
[ "$problems" = 0 ]
