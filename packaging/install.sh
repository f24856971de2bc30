#!/usr/bin/env bash
# Installs xymon-mqtt on a Debian Xymon server: binary, config, systemd unit and the Xymon graph/config
# fragments. Run as root from a checkout. Re-running it upgrades the binary and keeps an existing config.
set -euo pipefail
cd "$(dirname "$0")/.."

"packaging/install-deps.sh"
cargo build --release --locked
install -m 0755 target/release/xymon-mqtt /usr/local/bin/xymon-mqtt
install -d -m 0755 /etc/xymon-mqtt
if [ ! -e /etc/xymon-mqtt/xymon-mqtt.toml ]; then
  install -m 0640 -g xymon xymon-mqtt.example.toml /etc/xymon-mqtt/xymon-mqtt.toml
  echo "installed /etc/xymon-mqtt/xymon-mqtt.toml (edit it, then: systemctl restart xymon-mqtt)"
fi
install -m 0644 packaging/xymon-mqtt.service /etc/systemd/system/xymon-mqtt.service
for f in xymonserver.d/*.cfg; do [ -e "$f" ] && install -D -m 0644 "$f" "/etc/xymon/$f"; done
for f in graphs.d/*.cfg; do [ -e "$f" ] && install -D -m 0644 "$f" "/etc/xymon/$f"; done
/usr/local/bin/xymon-mqtt check --config /etc/xymon-mqtt/xymon-mqtt.toml
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl reload xymon || true   # picks up xymonserver.d/ and graphs.d/ (Debian's init script)
  systemctl enable --now xymon-mqtt
  systemctl --no-pager status xymon-mqtt || true
else
  echo "no running systemd: start it with  /usr/local/bin/xymon-mqtt --config /etc/xymon-mqtt/xymon-mqtt.toml"
fi
