#!/usr/bin/env bash
# Runs Vigil's whole test suite. The README's second quick-start command and
# .ci/run both call this script. It installs the Debian packages the tests
# need when they are missing; tests that need outside programs also check for
# them and say how to install them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null; then
  echo "test.sh: Go is not installed (need Go 1.26 or later)" >&2
  exit 1
fi
if ! command -v gcc >/dev/null; then
  echo "test.sh: gcc is needed for the SQLite driver (cgo): apt-get install gcc" >&2
  exit 1
fi

# Programs that tests run as real peers, from Debian's packages: Prometheus
# Alertmanager (notifications), the sqlite3 shell (tamper tests), firewall
# tools and nginx (ban exports).
need=()
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v sqlite3 >/dev/null || need+=(sqlite3)
# The ban exports are loaded into the real firewall tools and nginx.
command -v nft >/dev/null || need+=(nftables)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v ipset >/dev/null || need+=(ipset)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (Debian packages)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; } ||
    { echo "test.sh: could not install ${need[*]}: apt-get install ${need[*]}" >&2; exit 1; }
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
# -race covers the concurrent packages; the fuzz seed corpora run as tests.
# The output is also kept in a temporary file so that a failure deep in a long
# run is summed up at the end, where CI logs are read.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { go test -count=1 -race -timeout 15m ./... &&
  # The retention must-show at full size: 1,000,000 events purged and
  # verified (under -race the same test runs with 40,000).
  VIGIL_PURGE_EVENTS=1000000 go test -count=1 -timeout 10m -run TestPurgeMillion ./internal/retention/; } 2>&1 | tee "$log"; then
  echo
  echo "== failures"
  grep -E -e '^(--- FAIL|FAIL|panic:)' -e '^\s+\S+_test\.go:[0-9]+:' "$log" || true
  exit 1
fi
