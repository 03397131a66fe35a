#!/usr/bin/env bash
# Installs the programs `make run` and `make test` need besides Go, from
# Debian's packages, when they are missing: redis-server (sessions, OAuth2
# state, rate limits) and, with --browser, Chromium for the portal's browser
# tests. Safe to run again: it installs nothing that is already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [[ "${1:-}" == "--browser" ]]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[[ ${#need[@]} -eq 0 ]] && exit 0

echo "deps: installing ${need[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install ${need[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package starts a system redis on 6379; ours are private children.
