#!/usr/bin/env bash
# Builds the Debian package target/debian/mcp_<version>_<arch>.deb: mcp, mcp-agent and
# mcp-proxy in /usr/bin, the agent's hardened systemd unit, a default /etc/mcp/agent.toml
# (a conffile: upgrades keep the operator's edits), man pages generated from the clap
# definitions, and bash/zsh/fish completions. Only dpkg-deb is needed, no debhelper.
#
#   scripts/package.sh           release build (what to install on servers)
#   scripts/package.sh --debug   the debug build, for testing the package itself (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
cargo_profile=(--release)
if [[ ${1:-} == --debug ]]; then
    profile=debug
    cargo_profile=()
fi
cargo build --quiet "${cargo_profile[@]}" --bins -p mcp-cli -p agent -p proxy -p mcp-dist
bin="target/$profile"

version=$("$bin/mcp" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
out=target/debian
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/mcp" \
    "$stage/usr/share/man/man1" "$stage/usr/share/doc/mcp" \
    "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"

for b in mcp mcp-agent mcp-proxy; do
    install -m 0755 -s "$bin/$b" "$stage/usr/bin/$b"
done
install -m 0644 packaging/debian/mcp-agent.service "$stage/lib/systemd/system/"
install -m 0644 packaging/debian/agent.toml "$stage/etc/mcp/agent.toml"
# Keys go here: readable by root only.
install -d -m 0700 "$stage/etc/mcp/tls"

"$bin/mcp-dist" man "$stage/usr/share/man/man1" >/dev/null
gzip -9n "$stage"/usr/share/man/man1/*.1
"$bin/mcp" completions bash > "$stage/usr/share/bash-completion/completions/mcp"
"$bin/mcp" completions zsh > "$stage/usr/share/zsh/vendor-completions/_mcp"
"$bin/mcp" completions fish > "$stage/usr/share/fish/vendor_completions.d/mcp.fish"
cat > "$stage/usr/share/doc/mcp/copyright" <<TEXT
mcp $version
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
TEXT

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    packaging/debian/control > "$stage/DEBIAN/control"
echo /etc/mcp/agent.toml > "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done

deb="$out/mcp_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
