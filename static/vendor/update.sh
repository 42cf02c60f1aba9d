#!/usr/bin/env bash
# Re-vendors the Socket.IO browser client from the npm registry into socket.io-client/.
#
#   static/vendor/update.sh [VERSION]     (default: the newest 4.x)
#
# Idempotent: running it twice with the same version leaves the same files. Needs npm and tar;
# the kiosk itself never reaches the network (the page loads only these copied files).
set -euo pipefail

spec="socket.io-client@${1:-4}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/socket.io-client"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching $spec from the npm registry"
tarball="$(cd "$work" && npm pack --silent "$spec" | tail -n 1)"
tar -xzf "$work/$tarball" -C "$work"
version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$work/package/package.json" | head -n 1)"
case "$version" in
  4.*) ;;
  *) echo "error: $spec resolved to version '$version', expected 4.x" >&2; exit 1 ;;
esac

mkdir -p "$dest"
for file in dist/socket.io.esm.min.js dist/socket.io.esm.min.js.map LICENSE; do
  name="$(basename "$file")"
  if [ -f "$dest/$name" ] && cmp -s "$work/package/$file" "$dest/$name"; then
    echo "unchanged: socket.io-client/$name"
  else
    cp "$work/package/$file" "$dest/$name"
    echo "updated:   socket.io-client/$name"
  fi
done
printf '%s\n' "$version" > "$dest/VERSION"
echo "socket.io-client $version vendored in $dest"
