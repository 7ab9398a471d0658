# Sourced by the other scripts: installs the Debian packages mcp's demo and tests use.
# podman + runc run containers (runc because crun fails on hybrid cgroups in sandboxes);
# gcc/libc6-dev build the static example server; curl reads its answer; docker-registry is
# the OCI registry the build tests start on loopback (its packaged service is not used).
install_packages() {
    local wanted=(podman runc gcc libc6-dev curl ca-certificates docker-registry)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "==> installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
