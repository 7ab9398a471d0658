#!/usr/bin/env bash
# Checks a built package (scripts/package.sh) the way a server would take it, without
# touching this machine's own system: apt resolves its dependencies (simulated), dpkg
# installs it into a scratch root, the installed binaries run, the unit passes
# `systemd-analyze verify`, the man pages and completions are where man and the shells look.
#
#   scripts/check-package.sh target/debian/mcp_<version>_<arch>.deb
set -euo pipefail
deb=$(realpath "$1")
root=$(mktemp -d /var/tmp/mcp-pkg.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "==> apt resolves the dependencies of $(basename "$deb") (simulated)"
apt-get install --simulate --no-install-recommends "$deb" >"$root.apt" 2>&1 \
    || { cat "$root.apt"; rm -f "$root.apt"; exit 1; }
rm -f "$root.apt"

echo "==> dpkg -i into a scratch root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# Dependencies are the host's business (checked above); scripts run outside the scratch root
# with DPKG_ROOT set, where the postinst does nothing.
dpkg --root="$root" --force-depends --force-script-chrootless --log=/dev/null -i "$deb" \
    >"$root/dpkg.log" 2>&1 || { cat "$root/dpkg.log"; exit 1; }
dpkg --root="$root" -s mcp | grep -q "^Status: install ok installed"

echo "==> the installed binaries run"
for b in mcp mcp-agent mcp-proxy; do
    "$root/usr/bin/$b" --version
done
"$root/usr/bin/mcp-agent" --version | grep -qx "mcp-agent $("$root/usr/bin/mcp" --version | awk '{print $2}')"

echo "==> the default agent.toml is read by the agent (it names what to set before start)"
test "$(stat -c %a "$root/etc/mcp/tls")" = 700
grep -q '^/etc/mcp/agent.toml$' "$root/var/lib/dpkg/info/mcp.conffiles"
set +e
out=$(sed "s#/etc/mcp#$root/etc/mcp#g; s#/var/lib/mcp#$root/var/lib/mcp#g" "$root/etc/mcp/agent.toml" \
    > "$root/agent-check.toml" && "$root/usr/bin/mcp-agent" --config "$root/agent-check.toml" 2>&1)
code=$?
set -e
# The config parses; without the TLS files the agent stops, naming the missing one.
if [[ $code -eq 0 ]] || ! grep -q "node.pem" <<<"$out"; then
    echo "unexpected: exit $code: $out" >&2
    exit 1
fi

echo "==> systemd-analyze verify mcp-agent.service"
# Verified on this machine's systemd, with the program and man pages of the scratch root.
mkdir -p "$root/verify"
sed "s#^ExecStart=/usr/bin/#ExecStart=$root/usr/bin/#" \
    "$root/lib/systemd/system/mcp-agent.service" > "$root/verify/mcp-agent.service"
# verify exits 0 after a line it ignored ("Failed to parse ..., ignoring"): any output fails.
verified=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$root/verify/mcp-agent.service" 2>&1) \
    && [[ -z $verified ]] || { echo "$verified" >&2; exit 1; }
grep -q '^KillMode=process$' "$root/lib/systemd/system/mcp-agent.service"

echo "==> man pages and completions"
for page in mcp mcp-deploy mcp-tls-cert-create mcp-agent mcp-proxy; do
    test -s "$root/usr/share/man/man1/$page.1.gz"
    zcat "$root/usr/share/man/man1/$page.1.gz" | grep -q '^\.TH'
done
bash -c "source '$root/usr/share/bash-completion/completions/mcp' && complete -p mcp" >/dev/null
test -s "$root/usr/share/zsh/vendor-completions/_mcp"
test -s "$root/usr/share/fish/vendor_completions.d/mcp.fish"
echo "==> removal keeps the operator's agent.toml, purge removes it"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -r mcp >"$root/dpkg.log" 2>&1 \
    || { cat "$root/dpkg.log"; exit 1; }
test ! -e "$root/usr/bin/mcp-agent"
test -f "$root/etc/mcp/agent.toml"
dpkg --root="$root" --force-script-chrootless --log=/dev/null -P mcp >"$root/dpkg.log" 2>&1 \
    || { cat "$root/dpkg.log"; exit 1; }
test ! -e "$root/etc/mcp/agent.toml"
echo "package ok: $(basename "$deb")"
