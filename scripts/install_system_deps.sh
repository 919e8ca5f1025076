#!/usr/bin/env bash
# System libraries depi uses: FFmpeg's shared libraries (torchcodec) and Mesa EGL (headless MuJoCo rendering).
# Installs them with apt when running as root and they are missing; otherwise says what to install.
set -euo pipefail
pkgs=(ffmpeg libegl1 libegl-mesa0 libgl1 libgles2)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "depi: missing system packages: ${missing[*]} (install them, e.g. sudo apt-get install ${missing[*]})" >&2
fi
