#!/usr/bin/env bash
# Install whatever kipd needs that is missing, from Debian 12's packages.
# Sourced by scripts/start and scripts/test. Uses sudo when not root.
set -euo pipefail

KIPD_BUILD_PACKAGES=(gcc pkg-config meson ninja-build libuv1-dev libpq-dev libjansson-dev libssl-dev libcurl4-openssl-dev
                     node-llhttp libical-dev libargon2-dev libsystemd-dev python3 postgresql-15 postgresql-client-15)
KIPD_TEST_PACKAGES=(python3 python3-pytest python3-requests python3-jsonschema python3-yaml python3-icalendar python3-prometheus-client
                    python3-cryptography procps
                    faketime libfaketime nginx-light)
# tests/bench/run: wrk drives HTTP; pgbench and psql come with postgresql-client-15; auto_explain with
# postgresql-contrib; perf for profiles; npm for the PostGraphile peer (tests/bench/peer).
# npm for the PostGraphile peer comes with the machine's nodejs; Debian's npm package
# conflicts with it, so it is not listed here.
KIPD_BENCH_PACKAGES=(wrk postgresql-contrib linux-perf)
# clients/web: the web UI's one npm package (Chart.js, pinned in clients/web/package-lock.json), installed
# by scripts/web-deps with `npm ci` before the build; npm as for tests/browser below.
KIPD_WEB_PACKAGES=(nodejs)
# tests/browser: the web UI end to end in Debian's chromium, driven by playwright-core (npm, pinned in
# tests/browser/package-lock.json; it never downloads a browser). npm comes with the machine's nodejs
# where that is NodeSource's; with Debian's nodejs, scripts/test installs Debian's npm package.
# chromium-l10n: Debian's chromium ships only en-US.pak, and without da.pak --lang=da-DK falls back to
# en-US, so date and time inputs render as mm/dd/yyyy and 10:00 AM in the screenshots.
KIPD_BROWSER_PACKAGES=(chromium chromium-l10n nodejs)
# tests/fhir: the FHIR R4 validator of tests/integration/test_fhir.py, FHIR.js (npm `fhir`, pinned in
# tests/fhir/package-lock.json) run by node; npm as for tests/browser.
KIPD_FHIR_PACKAGES=(nodejs)
# tests/fuzz/run: libFuzzer targets built with clang 14 (ASan + UBSan runtimes in libclang-rt-14-dev).
KIPD_FUZZ_PACKAGES=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
# tests/package/run: build the .deb packages (debian/) and check the systemd unit.
KIPD_PACKAGE_PACKAGES=(dpkg-dev debhelper fakeroot libsystemd-dev systemd)

kipd_install_missing() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "kipd: installing ${missing[*]}" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "kipd: need root or sudo to install ${missing[*]}" >&2; return 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
