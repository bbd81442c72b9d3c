#!/usr/bin/env bash
# The project's whole test run: what the README's test command runs and what
# CI runs. With --install it first installs, through apt, the Debian packages
# the tests compare against (libvirt's schemas and clients, xmllint, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--install" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        libvirt0 libxml2-utils libvirt-clients >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
