#!/usr/bin/env bash
# Builds the Debian package from this checkout and installs it with apt (README.md, "Installing on a
# Xymon server"). Run as root; upgrading is running it again.
set -euo pipefail
cd "$(dirname "$0")/.." && packaging/install-deps.sh --cargo-deb
deb=$(cargo deb --locked | grep '\.deb$') && apt-get install -y "$deb"
