#!/usr/bin/env bash
# Installs the Debian tools some tests need, only where they are missing:
#   promtool      (package prometheus): test/alerts.test.ts checks deploy/prometheus
#   pgbouncer     (package pgbouncer)
#   patroni, etcd, PostgreSQL 15 (packages patroni, etcd-server, postgresql-15):
#                 the HA cluster of packages/devdb/src/Patroni.ts
# Safe to run again: with everything present it does nothing, not even
# `apt-get update`. Needs root, or sudo. Debian/Ubuntu only.
set -euo pipefail

# check:package:service. The check is a binary's name, or an absolute path
# for binaries that are not on PATH (PostgreSQL's live under its version).
# The service is the one the package registers, which this script keeps from
# running; postgresql-15 has none of its own (see pg_dropcluster below).
tools=(
  "promtool:prometheus:prometheus"
  "pgbouncer:pgbouncer:pgbouncer"
  "patroni:patroni:patroni"
  "etcd:etcd-server:etcd"
  "/usr/lib/postgresql/15/bin/postgres:postgresql-15:"
)

check_of() { echo "${1%%:*}"; }
package_of() { local rest="${1#*:}"; echo "${rest%%:*}"; }
service_of() { echo "${1##*:}"; }

# pgbouncer lives in /usr/sbin, which is not on every PATH.
have() {
  case "$1" in
    /*) [ -x "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] ;;
  esac
}

missing=()
services=()
for tool in "${tools[@]}"; do
  have "$(check_of "$tool")" && continue
  missing+=("$(package_of "$tool")")
  if [ -n "$(service_of "$tool")" ]; then services+=("$(service_of "$tool")"); fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-debian-tools: promtool, pgbouncer, patroni, etcd and postgresql-15 already installed"
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

# Several packages start a server from their maintainer scripts (prometheus on
# :9090, pgbouncer on :6432, etcd on :2379, PostgreSQL on :5432), which a test
# machine must not have. A policy-rc.d that answers 101 makes invoke-rc.d and
# deb-systemd-invoke skip that start; one that already exists (Docker images
# ship one) is kept.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' > '$policy' && chmod 755 '$policy'"
  trap 'as_root rm -f "$policy"' EXIT
fi

# postgresql-15 creates a cluster `main` on 5432 that starts at every boot.
# Clusters that exist now are someone's; the ones this run creates are dropped.
clusters() { if command -v pg_lsclusters >/dev/null 2>&1; then pg_lsclusters -h | awk '{print $1 "/" $2}'; fi; }
clusters_before=$(clusters)

echo "install-debian-tools: installing ${missing[*]}"
started=$SECONDS
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for cluster in $(clusters); do
  if ! grep -qxF "$cluster" <<<"$clusters_before"; then
    as_root pg_dropcluster --stop "${cluster%%/*}" "${cluster#*/}"
    echo "install-debian-tools: dropped the cluster $cluster that the PostgreSQL package created"
  fi
done

# Belt and braces for a policy that allowed the start, and so that a reboot
# does not start them either. Only services this run installed are touched.
# Each step may find no init system (a container): that is not an error.
for service in "${services[@]}"; do
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
  if ! have "$(check_of "$tool")"; then
    echo "install-debian-tools: $(check_of "$tool") still missing after installing $(package_of "$tool")" >&2
    exit 1
  fi
done
echo "install-debian-tools: installed ${missing[*]} in $((SECONDS - started)) s"
