# Sourced by the other scripts: installs the Debian packages mcp's demo and tests use.
# podman + runc run containers (runc because crun fails on hybrid cgroups in sandboxes);
# gcc/libc6-dev build the static example server; curl reads its answer;
# qemu-system-x86 provides qemu-system-x86_64 for unikernel VMs and the accelerator probe;
# the test-only ops stand-in (tests/fixtures/ops-standin, scripts/prepare-standin.sh) builds its
# raw images from busybox-static, syslinux (+ syslinux-common), dosfstools (mkfs.vfat) and
# mtools (mcopy), and its ops script is python3; docker-registry is the OCI registry the build
# tests start on loopback (its packaged service is not used); apache2-utils gives
# htpasswd for the registry with authentication of the private-registry tests; systemd gives
# systemd-analyze, which checks the agent's unit in the package test (no systemd runs);
# iptables is what netavark publishes ports with, and what the agent reads the NAT table with.
# iproute2 brings up loopback in the tests' own network namespace.
install_packages() {
    install_missing podman runc gcc libc6-dev curl ca-certificates qemu-system-x86 \
        busybox-static syslinux syslinux-common dosfstools mtools python3 docker-registry \
        apache2-utils systemd iptables iproute2
}

# The proxy benchmark (mcp-bench proxy) also drives wrk (load), nginx (the backend) and
# HAProxy (the baseline proxy).
install_bench_packages() {
    install_packages
    install_missing wrk nginx-light haproxy
}

# Installs the named Debian packages that are not installed yet.
install_missing() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "==> installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
