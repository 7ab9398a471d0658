#!/usr/bin/env bash
# prepare-standin.sh DIR: prepares what the TEST-ONLY stand-in for `ops`
# (tests/fixtures/ops-standin/ops) needs, into DIR (e.g. target/ops-standin):
#   DIR/vmlinuz             the kernel of Debian's linux-image-cloud-amd64
#   DIR/modules/*.ko        only its virtio network modules, uncompressed, for busybox insmod
#   DIR/modules.order       those modules' file names, in load order (one a line)
#   DIR/busybox             a copy of busybox-static's /bin/busybox
#   DIR/manifest            what was prepared, from which package (written last: DIR is complete
#                           when it exists and every file it names is there)
# Then point the stand-in at it: MCP_OPS_STANDIN_DIR=DIR.
#
# Idempotent: does nothing when DIR is already complete. Safe to run concurrently on the same
# DIR (a lock inside DIR serialises runs). Needs apt-get and dpkg (Debian), busybox-static,
# and access to Debian's package mirror for the first run. Exits non-zero with a message
# naming what is missing.
set -euo pipefail

die() { echo "prepare-standin: $*" >&2; exit 1; }

(($# == 1)) || die "usage: $0 DIR"
DIR=$1

# Load order, from the kernel's modules.dep: each needs only those before it.
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
         failover net_failover virtio_net)
META=linux-image-cloud-amd64

complete() {
    [[ -s $DIR/manifest && -s $DIR/vmlinuz && -x $DIR/busybox && -s $DIR/modules.order ]] || return 1
    local n=0 ko
    while read -r ko; do
        [[ -s $DIR/modules/$ko ]] || return 1
        n=$((n + 1))
    done <"$DIR/modules.order"
    ((n == ${#MODULES[@]}))
}

if complete; then
    exit 0
fi

for tool in apt-get apt-cache dpkg flock; do
    command -v "$tool" >/dev/null || die "'$tool' is missing (this script needs a Debian host)"
done
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX is missing: install the busybox-static package"
# The initramfs has no libc: busybox must be the static build.
has_interp() { # does the ELF file $1 ask for a dynamic loader (a PT_INTERP program header)?
    python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    h = f.read(64)
    if h[:4] != b"\x7fELF" or h[4] != 2:
        sys.exit(1)
    phoff, = struct.unpack_from("<Q", h, 32)
    phentsize, phnum = struct.unpack_from("<HH", h, 54)
    f.seek(phoff)
    ph = f.read(phentsize * phnum)
sys.exit(0 if any(struct.unpack_from("<I", ph, i * phentsize)[0] == 3 for i in range(phnum)) else 1)
PY
}
if has_interp "$BUSYBOX"; then
    die "$BUSYBOX is dynamically linked: install busybox-static (not busybox)"
fi

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if complete; then # another run finished while we waited for the lock
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/prepare-standin.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download as root fetches as the _apt user: let it write there.
chmod 0755 "$work"
mkdir "$work/dl"
if id _apt >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then chown _apt "$work/dl"; fi

updated=false
apt_update() {
    $updated && return 1
    updated=true
    [[ $(id -u) == 0 ]] || return 1
    echo "prepare-standin: refreshing apt's package lists" >&2
    apt-get update -qq >&2 || return 1
}

# The meta package depends on the versioned kernel package, e.g. linux-image-6.1.0-56-cloud-amd64.
resolve() {
    apt-cache depends --important "$META" 2>/dev/null |
        awk '$1 == "Depends:" || $1 == "|Depends:" {print $2}' |
        grep -E '^linux-image-[0-9].*-cloud-amd64$' | head -n1
}
pkg=$(resolve || true)
if [[ -z $pkg ]] && apt_update; then pkg=$(resolve || true); fi
[[ -n $pkg ]] || die "cannot resolve $META to a versioned kernel package (is apt's list current? run apt-get update)"

fetch() { (cd "$work/dl" && apt-get download -q "$pkg" >/dev/null 2>"$work/dl.err"); }
if ! fetch; then
    if apt_update && fetch; then :; else
        cat "$work/dl.err" >&2
        die "apt-get download $pkg failed"
    fi
fi
deb=$(find "$work/dl" -maxdepth 1 -name '*.deb' -print -quit)
[[ -n $deb ]] || die "apt-get download $pkg left no .deb"
version=$(dpkg-deb -f "$deb" Version)
echo "prepare-standin: extracting $pkg $version" >&2
dpkg -x "$deb" "$work/x"

kernel=$(find "$work/x/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
[[ -n $kernel ]] || die "$pkg has no /boot/vmlinuz-*"
moddir=$(find "$work/x/lib/modules" -mindepth 1 -maxdepth 1 -type d -print -quit 2>/dev/null || true)
[[ -n $moddir ]] || die "$pkg has no /lib/modules/<version>"
kver=$(basename "$moddir")

# Stage the result, then move it into DIR file by file; the manifest goes last.
stage=$work/stage
mkdir -p "$stage/modules"
cp "$kernel" "$stage/vmlinuz"
: >"$stage/modules.order"
for m in "${MODULES[@]}"; do
    src=$(find "$moddir/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" |
          head -n1)
    [[ -n $src ]] || die "$pkg has no module $m.ko[.xz|.zst|.gz] (maybe built in, or renamed)"
    # busybox insmod reads plain ELF modules; decompress the others here.
    case $src in
        *.ko) cp "$src" "$stage/modules/$m.ko" ;;
        *.ko.xz) command -v xz >/dev/null || die "$src is xz-compressed: install xz-utils"
                 xz -dc "$src" >"$stage/modules/$m.ko" ;;
        *.ko.zst) command -v zstd >/dev/null || die "$src is zstd-compressed: install zstd"
                  zstd -qdc "$src" >"$stage/modules/$m.ko" ;;
        *.ko.gz) gzip -dc "$src" >"$stage/modules/$m.ko" ;;
    esac
    head -c4 "$stage/modules/$m.ko" | grep -q $'^\x7fELF' || die "$src did not give an ELF module"
    echo "$m.ko" >>"$stage/modules.order"
done
cp "$BUSYBOX" "$stage/busybox"
chmod 0755 "$stage/busybox"
{
    echo "# written by scripts/prepare-standin.sh for the test-only ops stand-in"
    echo "package=$pkg"
    echo "version=$version"
    echo "kernel=$kver"
    echo "vmlinuz=vmlinuz"
    echo "modules=$(tr '\n' ' ' <"$stage/modules.order" | sed 's/ $//')"
    echo "busybox=busybox ($(dpkg-query -W -f='${Package} ${Version}' busybox-static 2>/dev/null || echo unknown))"
} >"$stage/manifest"

rm -rf "$DIR/modules" "$DIR/manifest"
mv "$stage/modules" "$DIR/modules"
for f in vmlinuz modules.order busybox manifest; do mv -f "$stage/$f" "$DIR/$f"; done
complete || die "internal error: $DIR is still incomplete"
echo "prepare-standin: ready in $DIR ($pkg $version)" >&2
