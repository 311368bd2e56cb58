#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, when they are missing:
# Chromium and ChromeDriver (the status page and the offline API docs), promtool (the
# /metrics exposition), jq (the README's curl commands) and etcd (the etcd store and the
# masters' leader election, on a three-member cluster the fixtures start). Needs root on Debian;
# elsewhere it says what is missing.
set -euo pipefail
needed=()
command -v chromium >/dev/null 2>&1 || needed+=(chromium fonts-liberation)
command -v chromedriver >/dev/null 2>&1 || needed+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || needed+=(prometheus)
command -v jq >/dev/null 2>&1 || needed+=(jq)
command -v etcd >/dev/null 2>&1 || needed+=(etcd-server)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup: missing ${needed[*]} (install them; the tests that need them are skipped)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
