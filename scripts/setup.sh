#!/usr/bin/env bash
# Shared set-up for the two README commands: system packages (as root, with apt), then a
# virtual environment in .venv with faultline and its test extras. Idempotent: a second call
# installs nothing new.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

SYSTEM_PACKAGES=(iptables iproute2 openssh-server sudo docker.io faketime libfaketime etcd-server etcd-client nats-server chromium fuse3)

install_system_packages() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: not root or no apt-get: system packages not installed (tests that need them will be skipped)" >&2
    return 0
  fi
  local missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's etcd-server package starts a system etcd on the default ports; faultline runs its
  # own clusters, so make sure the packaged service is not holding them.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
  # Likewise nats-server's packaged service (port 4222): faultline starts its own servers.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nats-server >/dev/null 2>&1 || true; fi
  # Likewise docker.io's system engine: the docker tests start a dockerd of their own, and a
  # system one would rewrite the host's firewall (FORWARD policy DROP) under the netns tests.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true; fi
}

install_venv() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  local stamp=.venv/.faultline-installed
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/pip install -q -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

install_system_packages
install_venv
