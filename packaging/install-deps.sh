#!/usr/bin/env bash
# Installs what xymon-mqtt needs to build and run its tests on Debian 12 (bookworm):
# the Debian packages below plus a Rust toolchain with rustfmt and clippy.
# Idempotent: does nothing when everything is already there.
#
# Usage: packaging/install-deps.sh [--cargo-deb] [EXTRA_PACKAGE ...]
#   --cargo-deb  also cargo-deb, which builds the Debian package (run-tests, install.sh)
#   e.g. packaging/install-deps.sh jq
set -euo pipefail

WITH_CARGO_DEB=0
if [ "${1:-}" = --cargo-deb ]; then
    WITH_CARGO_DEB=1
    shift
fi

PACKAGES=(
    mosquitto mosquitto-clients    # MQTT broker and CLI clients for the integration tests
    xymon                          # xymond and the xymon CLI for the integration tests
    rrdtool librrd-dev             # librrd.a for the RRD writer (build.rs); rrdtool draws the dashboard graphs
    libclang-dev pkg-config        # bindgen / pkg-config for librrd
    build-essential ca-certificates curl
    chromium chromium-driver       # headless browser test of the web UI (tests/web_e2e.rs)
    python3 python3-venv           # schemathesis (OpenAPI conformance test), installed by run-tests
    lintian                        # checks the Debian package (tests/deb_package.rs)
)
PACKAGES+=("$@")

say() { printf '[install-deps] %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)" != "ii " ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    say "Debian packages: all ${#PACKAGES[@]} present"
else
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { say "need root or sudo to install: ${missing[*]}"; exit 1; }
        SUDO=(sudo)
    fi

    # Without systemd as init (containers, chroots), invoke-rc.d would run the
    # packages' init scripts and leave a xymond on :1984 and a mosquitto on :1883
    # behind. Tell it not to, with a temporary policy-rc.d (exit 101 = "action
    # forbidden"), unless one exists already. With systemd, services are left
    # exactly as Debian sets them up; nothing running is ever stopped.
    policy=/usr/sbin/policy-rc.d
    if [ ! -d /run/systemd/system ] && [ ! -e "$policy" ]; then
        say "no systemd: keeping package services from starting during install"
        printf '#!/bin/sh\n# temporary, written by xymon-mqtt install-deps.sh\nexit 101\n' |
            "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        trap '"${SUDO[@]}" rm -f "$policy"' EXIT
    fi

    say "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    say "Debian packages installed"
fi

# --- Rust toolchain ----------------------------------------------------------

if ! command -v cargo >/dev/null && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

if ! command -v cargo >/dev/null; then
    say "installing Rust with rustup (minimal profile, rustfmt, clippy)"
    curl --proto '=https' --tlsv1.2 https://sh.rustup.rs -sSf |
        sh -s -- -y --profile minimal -c rustfmt,clippy
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
elif command -v rustup >/dev/null; then
    for comp in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
            say "adding Rust component $comp"
            rustup component add "$comp"
        fi
    done
else
    for tool in fmt clippy; do
        cargo "$tool" --version >/dev/null 2>&1 ||
            say "warning: cargo $tool is missing and there is no rustup to add it"
    done
fi

say "Rust: $(cargo --version)"

# --- cargo-deb ---------------------------------------------------------------

# Builds the Debian package (`cargo deb`, [package.metadata.deb] in Cargo.toml). Pinned: its generated
# maintainer scripts are part of the package that tests/deb_package.rs checks.
CARGO_DEB_VERSION=3.8.0
if [ "$WITH_CARGO_DEB" = 1 ]; then
    if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
        say "installing cargo-deb $CARGO_DEB_VERSION"
        cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
    fi
    say "$(cargo deb --version)"
fi
say "done"
