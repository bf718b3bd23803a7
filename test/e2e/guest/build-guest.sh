#!/usr/bin/env bash
# Builds the e2e guest: Debian's generic kernel plus a small busybox initramfs.
#
# Output (in the cache dir, ${USERNET_E2E_CACHE:-<repo>/.cache/e2e}), printed as
# key=value lines on stdout for test/e2e/harness/prereqs.ts:
#   kernel=/…/guest/<kver>/vmlinux (uncompressed, PVH boot) or vmlinuz
#   initrd=/…/guest/<kver>/initramfs.gz
#   initrd_dig=/…/guest/<kver>/initramfs-dig.gz (the same plus dig and its ~45 MB of
#     libraries, appended as a second archive; only guests that need dig boot it)
#   initrd_smb=/…/guest/<kver>/initramfs-smb.gz (the base plus Samba's smbclient and
#     its ~70 MB of libraries, the same way; for the SMB tests)
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
# Client programs (ISC dhclient, tftp-hpa, atftp, iperf3, dig) come from Debian packages
# fetched the same way (`apt-get download` into the cache, `dpkg -x`, never installed);
# their shared libraries are taken from the extracted packages first, else from the
# host's (same Debian release). A library found nowhere stops the build with its name.
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
#  - ./overlay/: copied verbatim over the root (e.g. overlay/etc/udhcpc/default.script,
#    overlay/etc/usernet-init.d/NN-name.sh hooks that /init sources before the shell).
# The NIC drivers: loaded in dependency order (modinfo -F depends).
EXTRA_BINARIES=()
#  - DEB_PACKAGES: Debian packages unpacked (not installed) into the cache; DEB_BINARIES:
#    programs taken from them, with their libraries: PATH, or PATH:GUEST_PATH for one
#    that busybox --install would replace (tftp-hpa's tftp goes to /usr/local/bin;
#    busybox sh runs its own applet for a bare `tftp`: call /usr/local/bin/tftp).
#  - DIG_*: the same for a second archive appended to the first (initramfs-dig.gz): dig
#    needs libicudata and friends (~45 MB), too heavy for every boot.
DEB_PACKAGES=(isc-dhcp-client tftp-hpa atftp iperf3 libiperf0 libsctp1)
DEB_BINARIES=(/sbin/dhclient /usr/bin/tftp:/usr/local/bin/tftp /usr/bin/atftp /usr/bin/iperf3)
DIG_PACKAGES=(bind9-dnsutils bind9-libs libjemalloc2 libmaxminddb0 libfstrm0 libprotobuf-c1 liblmdb0)
DIG_BINARIES=(/usr/bin/dig)
#  - SMB_*: the same for a third archive (initramfs-smb.gz, base + smbclient): Samba's
#    client libraries are ~70 MB. Libraries no package here provides (ICU, GnuTLS, ...)
#    come from the host, as for dig.
SMB_PACKAGES=(smbclient samba-libs libwbclient0 libtalloc2 libtdb1 libtevent0 libldb2 libjansson4 libarchive13 libpopt0 libldap-2.5-0 libsasl2-2)
SMB_BINARIES=(/usr/bin/smbclient)
MODULES=(e1000 virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net af_packet)
# -------------------------------------------------------------------------------------

for tool in busybox dpkg modinfo flock gzip xz sha256sum ldd readelf; do
  command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install busybox-static kmod binutils)"
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

# ---- Client packages ---------------------------------------------------------------
# One .deb per package name, kept once downloaded (an apt-get update does not replace
# it: the guest stays what it was until the cache is cleared).
extra_dir="$cache/debs/extra"
mkdir -p "$extra_dir"
cached_extra() {
  local f
  for f in "$extra_dir/$1"_*.deb; do
    [ -f "$f" ] && echo "$f" && return 0
  done
  return 0
}
missing_debs=()
for p in "${DEB_PACKAGES[@]}" "${DIG_PACKAGES[@]}" "${SMB_PACKAGES[@]}"; do
  [ -n "$(cached_extra "$p")" ] || missing_debs+=("$p")
done
if [ ${#missing_debs[@]} -gt 0 ]; then
  log "downloading ${missing_debs[*]}"
  dl=$(mktemp -d "$extra_dir/download.XXXXXX")
  (cd "$dl" && apt-get download -q "${missing_debs[@]}" >&2) || {
    rm -rf "$dl"
    die "apt-get download ${missing_debs[*]} failed"
  }
  mv "$dl"/*.deb "$extra_dir/" && rm -rf "$dl"
fi
extra_debs=()
for p in "${DEB_PACKAGES[@]}" "${DIG_PACKAGES[@]}" "${SMB_PACKAGES[@]}"; do
  f=$(cached_extra "$p")
  [ -n "$f" ] || die "apt-get download $p produced no .deb in $extra_dir"
  extra_debs+=("$f")
done

# ---- Initramfs inputs --------------------------------------------------------------
out="$cache/guest/$kver"
inputs=$(
  {
    echo "pkg=$pkg deb=$(basename "$deb")"
    echo "modules=${MODULES[*]}"
    echo "extras=${EXTRA_BINARIES[*]:-}"
    echo "debs=${extra_debs[*]##*/} bins=${DEB_BINARIES[*]} dig=${DIG_BINARIES[*]} smb=${SMB_BINARIES[*]}"
    # Contents only: the same script called by another path must hit the cache.
    for f in "$here/build-guest.sh" "$here/init" "$busybox_bin" "${EXTRA_BINARIES[@]:-}"; do
      if [ -n "$f" ]; then echo "$f $(sha256sum <"$f" | cut -d' ' -f1)"; fi
    done
    if [ -d "$here/overlay" ]; then
      (cd "$here/overlay" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
    fi
  } | sha256sum | cut -d' ' -f1
)

if [ -f "$out/inputs" ] && [ "$(cat "$out/inputs")" = "$inputs" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ] && [ -f "$out/initramfs-dig.gz" ] && [ -f "$out/initramfs-smb.gz" ]; then
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

  # Programs from the unpacked client packages. ldd runs with the unpacked library
  # dirs first, so a library from a package lands at its packaged path; the rest come
  # from the host at the same path (the guest's ld.so searches the multiarch dirs).
  debroot="$work/debroot"
  mkdir -p "$debroot"
  for d in "${extra_debs[@]}"; do dpkg -x "$d" "$debroot"; done
  deb_libpath="$debroot/lib/x86_64-linux-gnu:$debroot/usr/lib/x86_64-linux-gnu:$debroot/usr/lib"
  copy_deb_binary() { # <path in the package>[:<path in the guest>] <destination root>
    local b=${1%%:*} to=${1#*:} dest=$2 lib rel
    [ -f "$debroot$b" ] || die "$b is in none of ${DEB_PACKAGES[*]} ${DIG_PACKAGES[*]} ${SMB_PACKAGES[*]}"
    mkdir -p "$dest$(dirname "$to")"
    cp "$debroot$b" "$dest$to"
    if LD_LIBRARY_PATH=$deb_libpath ldd "$debroot$b" | grep -q 'not found'; then
      die "$b needs libraries no package provides: $(LD_LIBRARY_PATH=$deb_libpath ldd "$debroot$b" | awk '/not found/ { print $1 }' | sort -u | tr '\n' ' ')"
    fi
    for lib in $(LD_LIBRARY_PATH=$deb_libpath ldd "$debroot$b" | grep -o '/[^ ]*' || true); do
      rel=${lib#"$debroot"}
      mkdir -p "$dest$(dirname "$rel")"
      # The dig layer leaves out what the base archive already has.
      [ -e "$dest$rel" ] || [ -e "$root$rel" ] || cp -L "$lib" "$dest$rel"
    done
  }
  for b in "${DEB_BINARIES[@]}"; do copy_deb_binary "$b" "$root"; done
  # dhclient keeps its lease database here unless told otherwise.
  mkdir -p "$root/var/lib/dhcp" "$root/etc/dhcp"
  diglayer="$work/dig"
  mkdir -p "$diglayer"
  for b in "${DIG_BINARIES[@]}"; do copy_deb_binary "$b" "$diglayer"; done
  smblayer="$work/smb"
  mkdir -p "$smblayer"
  for b in "${SMB_BINARIES[@]}"; do copy_deb_binary "$b" "$smblayer"; done
  # smbclient reads smb.conf (an empty one will do) and keeps its caches under /var
  mkdir -p "$smblayer/etc/samba" "$smblayer/var/lib/samba/private" "$smblayer/var/cache/samba" "$smblayer/run/samba"
  : >"$smblayer/etc/samba/smb.conf"
  if [ -d "$here/overlay" ]; then
    cp -a "$here/overlay/." "$root/"
  fi

  stage="$work/out"
  mkdir -p "$stage"
  (cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$stage/initramfs.gz"
  # The kernel unpacks concatenated archives in order, the later over the earlier.
  (cd "$diglayer" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$work/dig.gz"
  cat "$stage/initramfs.gz" "$work/dig.gz" >"$stage/initramfs-dig.gz"
  (cd "$smblayer" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -6 >"$work/smb.gz"
  cat "$stage/initramfs.gz" "$work/smb.gz" >"$stage/initramfs-smb.gz"
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
echo "initrd_dig=$out/initramfs-dig.gz"
echo "initrd_smb=$out/initramfs-smb.gz"
echo "kver=$kver"
echo "accel=$accel"
