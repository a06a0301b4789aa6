#!/usr/bin/env bash
# Installs what building, testing and demonstrating pg_eventbus needs, on
# Debian 12, with apt-get.  Safe to run again: it installs only what is
# missing.  Run as root (or with sudo available).
set -euo pipefail

packages=(
	build-essential
	postgresql-15
	postgresql-server-dev-15
	libcurl4-openssl-dev
	libjansson-dev
	libipc-run-perl
	clang
	libclang-rt-14-dev
	valgrind
	python3
	procps
	bc
	prometheus-postgres-exporter
)

# Node.js and npm run the Standard Webhooks reference verifier in TAP test
# 160_signatures.pl (test/webhooks); a Node.js installed otherwise will do.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=sudo
	else
		echo "setup.sh: missing packages (${missing[*]}) and not root; run as root" >&2
		exit 1
	fi
fi

echo "setup.sh: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The exporter's package starts its own service where it can; the tests run
# their own exporter against their own cluster, so leave none running.
if [[ " ${missing[*]} " == *" prometheus-postgres-exporter "* ]]; then
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now prometheus-postgres-exporter >/dev/null 2>&1 || true
	else
		$SUDO service prometheus-postgres-exporter stop >/dev/null 2>&1 || true
	fi
fi
