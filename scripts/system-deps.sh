#!/usr/bin/env bash
# Debian packages the tests and notebooks use: Chromium (browser test of the widgets), the offline
# Fashion-MNIST copy, and npm (the gallery fetches the widget renderer with it). Installs only what is missing; needs root (or sudo) for apt-get.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "system-deps: missing ${need[*]}; install them with: apt-get install -y ${need[*]}" >&2; exit 0; fi
fi
echo "system-deps: installing ${need[*]} with apt-get"
$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
  || echo "system-deps: apt-get install ${need[*]} failed; the browser test / real Fashion-MNIST will be unavailable" >&2
