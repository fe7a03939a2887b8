#!/usr/bin/env bash
# System packages from Debian: Chromium for the browser tests (Playwright cannot download its own here)
# and Fashion-MNIST (dataset-fashion-mnist, MIT) for the Rekognition Custom Labels tests and bench.
# DejaVu fonts (fonts-dejavu-core) for scripts/small_symbols.py, the small-symbols sample generator.
set -euo pipefail
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || packages+=(dataset-fashion-mnist)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || packages+=(fonts-dejavu-core)  # scripts/small_symbols.py
if [ ${#packages[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "${packages[*]} missing: run 'sudo apt-get install -y ${packages[*]}' for the tests that need them" >&2
  exit 0
fi
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
