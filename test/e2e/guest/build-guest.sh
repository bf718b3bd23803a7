#!/usr/bin/env bash
# Builds the e2e guest: Debian's generic kernel plus a small busybox initramfs.
#
# Output (in the cache dir, ${USERNET_E2E_CACHE:-<repo>/.cache/e2e}), printed as
# key=value lines on stdout for test/e2e/harness/prereqs.ts:
#   kernel=/…/guest/<kver>/vmlinux (uncompressed, PVH boot) or vmlinuz
#   initrd=/…/guest/<kver>/initramfs.gz
#   kver=6.1.0-NN-amd64
#   accel=tcg|kvm
# Progress and errors go to stderr.
#
# Idempotent and cached: the kernel .deb is downloaded once (`apt-get download`, then
# `dpkg -x` into a temporary dir; never installed); the initramfs is rebuilt only when
# its inputs change (this script, ./init, ./overlay, the busybox binary, the extra
# binaries, the kernel). Concurrent callers (vitest workers) serialize on a flock.
#
# Accelerator: USERNET_E2E_ACCEL=tcg|kvm wins. Otherwise, when /dev/kvm is usable,
# the guest is booted once with KVM; if the ready marker does not appear within
# USERNET_E2E_KVM_PROBE_SECONDS (20), TCG is used (nested KVM hangs early in boot on
# some machines). The verdict is cached per kernel version in accel-<kver>.
#
# Debian packages needed: qemu-system-x86, busybox-static, kmod (modinfo), cpio is
# NOT needed (busybox cpio), util-linux (flock, always present), apt + dpkg, gzip.
#
# Usage: build-guest.sh [--no-probe]   (--no-probe: print accel=tcg unless forced)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache=${USERNET_E2E_CACHE:-$repo/.cache/e2e}
probe=1
[ "${1:-}" = "--no-probe" ] && probe=0

log() { echo "build-guest: $*" >&2; }
die() {
  echo "build-guest: error: $*" >&2
  exit 1
}

# ---- Extras ------------------------------------------------------------------------
# Later tests need more programs in the guest. Add them here:
#  - EXTRA_BINARIES: host binaries copied to the same path in the guest, together with
#    the shared libraries `ldd` names (e.g. /usr/bin/iperf3).
#  - ./overlay/: copied verbatim over the root (e.g. overlay/usr/share/udhcpc/default.script,
#    overlay/etc/usernet-init.d/NN-name.sh hooks that /init sources before the shell).
# The NIC drivers: loaded in dependency order (modinfo -F depends).
EXTRA_BINARIES=()
MODULES=(e1000 virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net af_packet)
# -------------------------------------------------------------------------------------

for tool in busybox dpkg modinfo flock gzip xz sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install busybox-static kmod)"
done
busybox_bin=$(command -v busybox)
# busybox-static: a dynamic busybox would need its libraries in the guest.
if ldd "$busybox_bin" >/dev/null 2>&1; then
  die "$busybox_bin is dynamically linked; install busybox-static"
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 900 9 || die "timed out waiting for the lock on $cache/.lock"

# ---- Kernel package --------------------------------------------------------------
pkg=${USERNET_E2E_KERNEL_PKG:-}
# apt-cache takes seconds to load its cache; its answer only changes with apt-get
# update, which replaces files in the lists dir (and so changes the dir's mtime).
lists_stamp=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo none)
if [ -z "$pkg" ] && [ -f "$cache/kernel-pkg" ] && [ "$(cat "$cache/kernel-pkg.stamp" 2>/dev/null)" = "$lists_stamp" ]; then
  pkg=$(cat "$cache/kernel-pkg")
fi
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$pkg" ] && echo "$lists_stamp" >"$cache/kernel-pkg.stamp"
fi
if [ -z "$pkg" ] && [ -f "$cache/kernel-pkg" ]; then
  pkg=$(cat "$cache/kernel-pkg")
  log "apt-cache knows no linux-image-amd64; using the cached $pkg"
fi
[ -n "$pkg" ] || die "cannot find the kernel package (apt-cache depends linux-image-amd64 is empty; run apt-get update)"
case "$pkg" in linux-image-*-amd64) ;; *) die "unexpected kernel package name '$pkg'" ;; esac
kver=${pkg#linux-image-}

deb_dir="$cache/debs"
mkdir -p "$deb_dir"
cached_deb() {
  local f
  for f in "$deb_dir/${pkg}"_*.deb; do
    [ -f "$f" ] && echo "$f" && return 0
  done
  return 0
}
deb=$(cached_deb)
if [ -z "$deb" ]; then
  log "downloading $pkg"
  # apt's sandbox user cannot write into root-owned dirs; that only causes a warning.
  # Into a temp dir first: an interrupted download must not look like a cached .deb.
  dl=$(mktemp -d "$deb_dir/download.XXXXXX")
  (cd "$dl" && apt-get download -q "$pkg" >&2) || {
    rm -rf "$dl"
    die "apt-get download $pkg failed"
  }
  mv "$dl"/*.deb "$deb_dir/" && rm -rf "$dl"
  deb=$(cached_deb)
  [ -n "$deb" ] || die "apt-get download $pkg produced no .deb in $deb_dir"
fi
echo "$pkg" >"$cache/kernel-pkg"

# ---- Initramfs inputs --------------------------------------------------------------
out="$cache/guest/$kver"
inputs=$(
  {
    echo "pkg=$pkg deb=$(basename "$deb")"
    echo "modules=${MODULES[*]}"
    echo "extras=${EXTRA_BINARIES[*]:-}"
    # Contents only: the same script called by another path must hit the cache.
    for f in "$here/build-guest.sh" "$here/init" "$busybox_bin" "${EXTRA_BINARIES[@]:-}"; do
      if [ -n "$f" ]; then echo "$f $(sha256sum <"$f" | cut -d' ' -f1)"; fi
    done
    if [ -d "$here/overlay" ]; then
      (cd "$here/overlay" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
    fi
  } | sha256sum | cut -d' ' -f1
)

if [ -f "$out/inputs" ] && [ "$(cat "$out/inputs")" = "$inputs" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ]; then
  log "guest for $kver is up to date"
else
  log "building the guest for $kver"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  dpkg -x "$deb" "$work/pkg"
  moddir=""
  for d in "$work/pkg/lib/modules/$kver" "$work/pkg/usr/lib/modules/$kver"; do
    [ -d "$d" ] && moddir=$d
  done
  [ -n "$moddir" ] || die "no modules dir for $kver in $deb"
  vmlinuz=""
  for f in "$work/pkg/boot/vmlinuz-$kver" "$work/pkg/usr/boot/vmlinuz-$kver"; do
    [ -f "$f" ] && vmlinuz=$f
  done
  [ -n "$vmlinuz" ] || die "no vmlinuz-$kver in $deb"

  root="$work/root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,lib/modules,usr/bin,usr/sbin}
  cp "$busybox_bin" "$root/bin/busybox"
  cp "$here/init" "$root/init"
  chmod 0755 "$root/init" "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  # The kernel opens /dev/console before /init runs; /init falls back when mknod fails.
  mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  echo "root:x:0:" >"$root/etc/group"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"

  # Modules: each after its dependencies. Built-in ones (no .ko) are skipped.
  declare -A placed=()
  order=()
  find_ko() { find "$moddir/kernel" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" | head -n1; }
  place() {
    local m=$1 ko dep
    m=${m//-/_}
    [ -n "${placed[$m]:-}" ] && return 0
    placed[$m]=1
    ko=$(find_ko "$m")
    ko=${ko:-$(find_ko "${m//_/-}")}
    if [ -z "$ko" ]; then
      grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null || grep -q "/${m//_/-}.ko" "$moddir/modules.builtin" 2>/dev/null ||
        die "module $m is neither a .ko nor built in"
      return 0
    fi
    for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do place "$dep"; done
    case "$ko" in
      *.ko.xz) xz -dc "$ko" >"$root/lib/modules/$m.ko" ;;
      *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/$m.ko" ;;
      *) cp "$ko" "$root/lib/modules/$m.ko" ;;
    esac
    order+=("$m")
  }
  for m in "${MODULES[@]}"; do place "$m"; done
  printf '%s\n' "${order[@]}" >"$root/etc/modules-order"

  for b in "${EXTRA_BINARIES[@]:-}"; do
    [ -n "$b" ] || continue
    [ -x "$b" ] || die "extra binary $b not found"
    mkdir -p "$root$(dirname "$b")"
    cp -L "$b" "$root$b"
    for lib in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$root$(dirname "$lib")"
      cp -Ln "$lib" "$root$lib"
    done
  done
  if [ -d "$here/overlay" ]; then
    cp -a "$here/overlay/." "$root/"
  fi

  stage="$work/out"
  mkdir -p "$stage"
  (cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$stage/initramfs.gz"
  cp "$vmlinuz" "$stage/vmlinuz"
  # Under TCG, decompressing the bzImage takes seconds. A kernel with CONFIG_PVH boots
  # from its uncompressed ELF directly (QEMU -kernel understands the PVH note).
  config=$(dirname "$vmlinuz")/config-$kver
  if grep -q '^CONFIG_PVH=y' "$config" 2>/dev/null && grep -q '^CONFIG_KERNEL_XZ=y' "$config"; then
    off=$(LC_ALL=C grep -abo -P '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
    # xz stops reading after its stream, so tail gets SIGPIPE: judge xz alone.
    if [ -n "$off" ] && (set +o pipefail && tail -c +$((off + 1)) "$vmlinuz" | xz -dcq --single-stream >"$stage/vmlinux") &&
      [ "$(head -c 4 "$stage/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      log "using the uncompressed PVH kernel"
    else
      rm -f "$stage/vmlinux"
    fi
  fi
  echo "$inputs" >"$stage/inputs"
  rm -rf "$out"
  mkdir -p "$(dirname "$out")"
  mv "$stage" "$out"
  rm -rf "$work"
  trap - EXIT
  log "guest for $kver built: modules ${order[*]}"
fi

kernel="$out/vmlinuz"
[ -f "$out/vmlinux" ] && kernel="$out/vmlinux"

# ---- Accelerator -------------------------------------------------------------------
accel=${USERNET_E2E_ACCEL:-}
case "$accel" in
  "" | tcg | kvm) ;;
  *) die "USERNET_E2E_ACCEL must be tcg or kvm, not '$accel'" ;;
esac
if [ -z "$accel" ] && [ -f "$cache/accel-$kver" ]; then
  accel=$(cat "$cache/accel-$kver")
fi
if [ -z "$accel" ]; then
  accel=tcg
  if [ "$probe" = 1 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && command -v qemu-system-x86_64 >/dev/null; then
    limit=${USERNET_E2E_KVM_PROBE_SECONDS:-20}
    log "probing KVM (up to ${limit} s)"
    plog=$(mktemp "$cache/kvm-probe.XXXXXX")
    qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot -m 256 -accel kvm \
      -kernel "$kernel" -initrd "$out/initramfs.gz" \
      -append "console=ttyS0 quiet panic=-1" -serial "file:$plog" </dev/null >/dev/null 2>&1 &
    qpid=$!
    i=0
    while [ $i -lt $((limit * 10)) ]; do
      if grep -q "USERNET-GUEST-READY" "$plog"; then
        accel=kvm
        break
      fi
      kill -0 "$qpid" 2>/dev/null || break
      sleep 0.1
      i=$((i + 1))
    done
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
    rm -f "$plog"
    log "KVM probe verdict: $accel"
    echo "$accel" >"$cache/accel-$kver"
  fi
fi

echo "kernel=$kernel"
echo "initrd=$out/initramfs.gz"
echo "kver=$kver"
echo "accel=$accel"
