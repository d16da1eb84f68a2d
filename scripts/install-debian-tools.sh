#!/usr/bin/env bash
# Installs the Debian tools some tests need, only where they are missing:
#   promtool   (package prometheus): test/alerts.test.ts checks deploy/prometheus
#   pgbouncer  (package pgbouncer)
# Safe to run again: with both binaries present it does nothing, not even
# `apt-get update`. Needs root, or sudo. Debian/Ubuntu only.
set -euo pipefail

# binary:package. pgbouncer lives in /usr/sbin, which is not on every PATH.
tools=("promtool:prometheus" "pgbouncer:pgbouncer")

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
for tool in "${tools[@]}"; do
  have "${tool%%:*}" || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-debian-tools: promtool and pgbouncer already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-debian-tools: apt-get not found; install ${missing[*]} by other means" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-debian-tools: must run as root (or with sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
as_root() { "${sudo[@]}" "$@"; }

# Both packages start a server from their maintainer scripts (prometheus on
# :9090, pgbouncer on :6432), which a test machine must not have. A
# policy-rc.d that answers 101 makes invoke-rc.d and deb-systemd-invoke skip
# that start; one that already exists (Docker images ship one) is kept.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > '$policy' && chmod 755 '$policy'"
  trap 'as_root rm -f "$policy"' EXIT
fi

echo "install-debian-tools: installing ${missing[*]}"
started=$SECONDS
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Belt and braces for a policy that allowed the start, and so that a reboot
# does not start them either. Only services this run installed are touched.
# Each step may find no init system (a container): that is not an error.
for service in "${missing[@]}"; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
  if command -v service >/dev/null 2>&1; then
    as_root service "$service" stop >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1; then
    as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done

for tool in "${tools[@]}"; do
  if ! have "${tool%%:*}"; then
    echo "install-debian-tools: ${tool%%:*} still missing after installing ${tool##*:}" >&2
    exit 1
  fi
done
echo "install-debian-tools: installed ${missing[*]} in $((SECONDS - started)) s"
promtool --version 2>&1 | head -n 1
