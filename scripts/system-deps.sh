#!/usr/bin/env bash
# System packages the tests need beyond Python: Debian's chromium (the dashboard's browser
# tests drive it with Playwright; `playwright install` cannot download browsers here) and
# graphviz (`dot` lays out the dashboard's graphs). Installs only what is missing; quiet and
# idempotent. Needs root (or passwordless sudo) only when something is missing.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v dot >/dev/null || missing+=(graphviz)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
