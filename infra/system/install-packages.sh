#!/usr/bin/env bash
# System programs the test suite starts for real: Prometheus (promtool), Alertmanager (amtool),
# PostgreSQL, the compiled HTTP load generators, a headless browser for screenshot checks and
# kubectl (its built-in Kustomize renders the overlays in the manifest tests).
# Installs the missing ones with apt-get when run as root on Debian/Ubuntu (CI); elsewhere it
# says what is missing and the tests that need them skip with that reason
# (FLYWHEEL_REQUIRE_SYSTEM_TOOLS=1, set in .ci/run, turns those skips into failures).
set -euo pipefail

declare -A PACKAGE_OF=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager  # Debian names the binary so
  [amtool]=prometheus-alertmanager
  [/usr/lib/postgresql/15/bin/initdb]=postgresql
  [hey]=hey
  [wrk]=wrk
  [chromium]=chromium
  [kubectl]=kubectl
)

missing=()
for program in "${!PACKAGE_OF[@]}"; do
  command -v "$program" >/dev/null 2>&1 || [[ -x $program ]] || missing+=("${PACKAGE_OF[$program]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: $packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $packages >/dev/null
else
  echo "note: missing system packages ($packages); tests that need them will skip." \
    "Install them with: sudo apt-get install $packages"
fi
