#!/usr/bin/env bash
# Every test: installs what the tests drive (podman, runc, gcc), builds the binaries the
# end-to-end tests run, runs the whole workspace's tests, then builds and checks the Debian
# package.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_packages

cargo build --workspace --bins
cargo test --workspace
# The Debian package, built from the same (debug) binaries and checked as a server takes it.
scripts/check-package.sh "$(scripts/package.sh --debug)"
