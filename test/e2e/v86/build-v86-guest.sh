#!/usr/bin/env bash
# Builds the v86 e2e guest: Debian's 32-bit kernel (the non-PAE 686 flavour: v86
# emulates no PAE) plus a tiny initramfs of Debian's i386 busybox-static, ./init and
# the NE2000 driver (v86's default NIC). The browser-VM tests boot it in the v86
# emulator (npm package v86), whose NIC talks to usernet over a WebSocket.
#
# Output (in the cache dir, ${USERNET_E2E_CACHE:-<repo>/.cache/e2e}), printed as
# key=value lines on stdout for test/e2e/harness/v86.ts:
#   kernel=/…/v86/<kver>/vmlinuz     (a bzImage: v86 boots it directly)
#   initrd=/…/v86/<kver>/initramfs.gz
#   bios=/usr/share/seabios/bios.bin vgabios=/usr/share/seabios/vgabios.bin
#     (Debian's SeaBIOS; the npm package ships no BIOS images)
#   kver=6.1.0-NN-686
# Progress and errors go to stderr.
#
# Like ../guest/build-guest.sh: the .debs are fetched once with `apt-get download`
# (never installed) and unpacked with `dpkg -x`; the initramfs is rebuilt only when its
# inputs change; concurrent callers serialize on a flock. Needs the i386 architecture
# in dpkg (`dpkg --add-architecture i386 && apt-get update`, as .ci/run does) and the
# seabios package.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${USERNET_E2E_CACHE:-$repo/.cache/e2e}

log() { echo "build-v86-guest: $*" >&2; }
die() {
  echo "build-v86-guest: error: $*" >&2
  exit 1
}

# the NE2000 PCI driver and what it needs, in load order
MODULES=(8390 ne2k-pci)

for tool in busybox dpkg apt-get apt-cache flock gzip sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found"
done
bios=/usr/share/seabios/bios.bin
vgabios=/usr/share/seabios/vgabios.bin
[ -f "$bios" ] && [ -f "$vgabios" ] || die "no $bios or $vgabios (apt-get install seabios)"
dpkg --print-foreign-architectures | grep -qx i386 ||
  die "dpkg has no i386 architecture (dpkg --add-architecture i386 && apt-get update)"

mkdir -p "$cache"
exec 9>"$cache/.lock-v86"
flock -w 900 9 || die "timed out waiting for the lock on $cache/.lock-v86"

# ---- Packages ------------------------------------------------------------------------
lists_stamp=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
pkg=""
if [ -f "$cache/v86-kernel-pkg" ] && [ "$(cat "$cache/v86-kernel-pkg.stamp" 2>/dev/null)" = "$lists_stamp" ]; then
  pkg=$(cat "$cache/v86-kernel-pkg")
fi
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-686:i386 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { sub(/:i386$/, "", $2); print $2; exit }')
  [ -n "$pkg" ] && echo "$lists_stamp" >"$cache/v86-kernel-pkg.stamp"
fi
if [ -z "$pkg" ] && [ -f "$cache/v86-kernel-pkg" ]; then
  pkg=$(cat "$cache/v86-kernel-pkg")
  log "apt-cache knows no linux-image-686:i386; using the cached $pkg"
fi
[ -n "$pkg" ] || die "cannot find the kernel package (apt-cache depends linux-image-686:i386 is empty; run apt-get update)"
case "$pkg" in linux-image-*-686) ;; *) die "unexpected kernel package name '$pkg'" ;; esac
kver=${pkg#linux-image-}
echo "$pkg" >"$cache/v86-kernel-pkg"

deb_dir="$cache/debs/i386"
mkdir -p "$deb_dir"
cached() { # the cached .deb of package $1, if any
  local f
  for f in "$deb_dir/$1"_*.deb; do
    [ -f "$f" ] && echo "$f" && return 0
  done
  return 0
}
missing=()
for p in "$pkg" busybox-static; do
  [ -n "$(cached "$p")" ] || missing+=("$p:i386")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "downloading ${missing[*]}"
  # into a temp dir first: an interrupted download must not look like a cached .deb
  dl=$(mktemp -d "$deb_dir/download.XXXXXX")
  (cd "$dl" && apt-get download -q "${missing[@]}" >&2) || {
    rm -rf "$dl"
    die "apt-get download ${missing[*]} failed"
  }
  mv "$dl"/*.deb "$deb_dir/" && rm -rf "$dl"
fi
kdeb=$(cached "$pkg")
bdeb=$(cached busybox-static)
[ -n "$kdeb" ] && [ -n "$bdeb" ] || die "apt-get download produced no .deb in $deb_dir"

# ---- Initramfs -----------------------------------------------------------------------
out="$cache/v86/$kver"
script="$here/../guest/overlay/etc/udhcpc/default.script"
inputs=$(
  {
    echo "kernel=$(basename "$kdeb") busybox=$(basename "$bdeb") modules=${MODULES[*]}"
    for f in "$here/build-v86-guest.sh" "$here/init" "$script"; do echo "$(sha256sum <"$f" | cut -d' ' -f1)"; done
  } | sha256sum | cut -d' ' -f1
)
if [ -f "$out/inputs" ] && [ "$(cat "$out/inputs")" = "$inputs" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ]; then
  log "v86 guest for $kver is up to date"
else
  log "building the v86 guest for $kver"
  work=$(mktemp -d "$cache/build-v86.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  dpkg -x "$kdeb" "$work/pkg"
  dpkg -x "$bdeb" "$work/bb"
  moddir="$work/pkg/lib/modules/$kver"
  [ -d "$moddir" ] || moddir="$work/pkg/usr/lib/modules/$kver"
  [ -d "$moddir" ] || die "no modules dir for $kver in $kdeb"
  vmlinuz="$work/pkg/boot/vmlinuz-$kver"
  [ -f "$vmlinuz" ] || die "no vmlinuz-$kver in $kdeb"
  root="$work/root"
  mkdir -p "$root"/{bin,sbin,etc/udhcpc,proc,sys,dev,tmp,run,lib/modules,usr/bin,usr/sbin}
  cp "$work/bb/bin/busybox" "$root/bin/busybox"
  cp "$here/init" "$root/init"
  cp "$script" "$root/etc/udhcpc/default.script"
  chmod 0755 "$root/init" "$root/bin/busybox" "$root/etc/udhcpc/default.script"
  ln -s busybox "$root/bin/sh"
  mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
  echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
  : >"$root/etc/modules-order"
  for m in "${MODULES[@]}"; do
    ko=$(find "$moddir/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -n1)
    if [ -z "$ko" ]; then
      grep -q "/$m.ko" "$moddir/modules.builtin" || die "module $m is neither a .ko nor built in"
      continue
    fi
    case "$ko" in
      *.ko.xz) xz -dc "$ko" >"$root/lib/modules/$m.ko" ;;
      *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/$m.ko" ;;
      *) cp "$ko" "$root/lib/modules/$m.ko" ;;
    esac
    echo "$m" >>"$root/etc/modules-order"
  done
  stage="$work/out"
  mkdir -p "$stage"
  (cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$stage/initramfs.gz"
  cp "$vmlinuz" "$stage/vmlinuz"
  echo "$inputs" >"$stage/inputs"
  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  mv "$stage" "$out"
  rm -rf "$work"
  trap - EXIT
  log "v86 guest for $kver built"
fi

echo "kernel=$out/vmlinuz"
echo "initrd=$out/initramfs.gz"
echo "bios=$bios"
echo "vgabios=$vgabios"
echo "kver=$kver"
