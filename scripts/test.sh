#!/usr/bin/env bash
# Every test: installs what the tests drive (podman, runc, gcc), builds the binaries the
# end-to-end tests run, runs the whole workspace's tests in a network namespace of their own,
# then builds and checks the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
install_packages

cargo build --workspace --bins --tests
# The unikernel tests' stand-in kernel comes from Debian's mirror: fetched here, while there is
# a network (the tests' namespace has none).
scripts/prepare-standin.sh "${CARGO_TARGET_DIR:-target}/debug/ops-standin"
# The tests run in a network namespace of their own, with loopback only. The NAT rules podman
# writes for test containers live and die with it: a rule that a killed podman leaked cannot
# redirect a later test's port, and the host's own tables are left as they were.
if unshare --net -- true 2>/dev/null; then
    unshare --net -- sh -c 'ip link set lo up && exec cargo test --workspace'
else
    echo "warning: cannot make a network namespace here (unshare --net); the tests use the host's" >&2
    cargo test --workspace
fi
# The Debian package, built from the same (debug) binaries and checked as a server takes it.
scripts/check-package.sh "$(scripts/package.sh --debug)"
