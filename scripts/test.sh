#!/usr/bin/env bash
# Every test: installs what the tests drive (podman, runc, gcc), builds the binaries the
# end-to-end tests run, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_packages

cargo build --workspace --bins
cargo test --workspace
