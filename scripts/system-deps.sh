#!/usr/bin/env bash
# Installs the Debian packages popgate's build and tests need, only if missing.
# Usage: scripts/system-deps.sh build|test
set -euo pipefail

build_packages=(build-essential pkg-config ca-certificates libpam0g-dev libclang-dev)
# Real clients and peers the end-to-end tests drive.
# python3-aiosmtpd is the upstream SMTP server the submission relay tests send
# to; msmtp is the sendmail-compatible MTA the sendmail relay test hands to.
# libpam-wrapper and libnss-wrapper run PAM and the passwd database in a
# sandbox; fail2ban-regex checks the filter against real log lines, and
# fail2ban's Python modules (in Debian's /usr/bin/python3) against journal entries.
# dovecot-core and dovecot-pop3d: the migration test runs a private Dovecot.
# fetchmail and mpop are POP3 clients the e2e tests drive.
# haproxy runs examples/haproxy.cfg in front of popgate (PROXY protocol test).
# debootstrap makes the throwaway Debian root the package test installs the
# .deb into (dpkg and debian-archive-keyring come with Debian itself).
# python3-prometheus-client's parsers read back what the metrics listener serves.
# util-linux-extra's fincore tells which messages are in the page cache.
test_packages=(curl python3 fetchmail mpop python3-aiosmtpd msmtp libpam-wrapper libnss-wrapper fail2ban dovecot-core dovecot-pop3d haproxy debootstrap python3-prometheus-client util-linux-extra)

case "${1:-test}" in
  build) wanted=("${build_packages[@]}") ;;
  test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-deb builds the Debian package (scripts/package, and the package test
# in scripts/test). Pinned, so the packaging does not change under us.
cargo_deb_version=3.8.0
if [ "${1:-test}" = test ] && ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
  echo "installing: cargo-deb $cargo_deb_version (cargo install, a few minutes)" >&2
  cargo install cargo-deb --locked --version "$cargo_deb_version" --quiet
fi
