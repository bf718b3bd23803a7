#!/usr/bin/env bash
# netboot lab: N disk-less QEMU guests PXE-boot (iPXE) from one usernet.
#
# usernet serves DHCP (boot file boot.ipxe) and TFTP from a lab directory; each guest's
# iPXE ROM fetches the script, the script fetches a kernel and an initramfs, and the
# booted guest asks DHCP for its address. Everything stays on this machine: usernet
# listens on 127.0.0.1 only, restrict=on keeps guests from reaching anything outside
# the virtual LAN, and the DNS forwarder's upstream is pinned to loopback.
#
# Usage: examples/netboot-lab/run.sh [N] [--check]
#   N        guests to boot (default 2)
#   --check  exit once every guest is up (0) or one failed (1), instead of waiting
# Environment:
#   KERNEL, INITRD   a bzImage and initramfs to boot (default: the e2e test guest,
#                    built into .cache/e2e by test/e2e/guest/build-guest.sh); an
#                    initramfs of your own must configure its network itself
#   LAB_DIR          the TFTP root (default: a new temp dir, removed at exit)
#   PORT             usernet's QEMU socket listener on 127.0.0.1 (default 10000)
#   ACCEL            tcg (default) or kvm
#   BOOT_TIMEOUT     seconds to wait for each guest (default 240)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
n=2
check=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    [0-9]*) n=$a ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "netboot-lab: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$n" -ge 1 ] && [ "$n" -le 16 ] || { echo "netboot-lab: N must be 1..16 (the DHCP pool holds 16)" >&2; exit 2; }
port=${PORT:-10000}
accel=${ACCEL:-tcg}
boot_timeout=${BOOT_TIMEOUT:-240}

for tool in qemu-system-x86_64 node; do
  command -v "$tool" >/dev/null || { echo "netboot-lab: '$tool' not found" >&2; exit 1; }
done
[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || [ -f /usr/lib/ipxe/qemu/pxe-virtio.rom ] ||
  echo "netboot-lab: warning: Debian's ipxe-qemu seems missing (apt-get install ipxe-qemu)" >&2
main="$repo/dist/cli/main.js"
[ -f "$main" ] || { echo "netboot-lab: $main missing: run npx tsc -p tsconfig.json" >&2; exit 1; }

# ---- The lab directory (TFTP root) ---------------------------------------------
kernel=${KERNEL:-}
initrd=${INITRD:-}
if [ -z "$kernel" ] || [ -z "$initrd" ]; then
  echo "netboot-lab: building/finding the test guest (test/e2e/guest/build-guest.sh)" >&2
  out=$(bash "$repo/test/e2e/guest/build-guest.sh" --no-probe)
  initrd=${initrd:-$(sed -n 's/^initrd=//p' <<<"$out")}
  kernel=${kernel:-$(dirname "$initrd")/vmlinuz}
fi
[ -f "$kernel" ] && [ -f "$initrd" ] || { echo "netboot-lab: kernel $kernel or initrd $initrd missing" >&2; exit 1; }

pids=()
own_dir=0
lab=${LAB_DIR:-}
if [ -z "$lab" ]; then
  lab=$(mktemp -d /tmp/netboot-lab.XXXXXX)
  own_dir=1
fi
cleanup() {
  # Only what this script started, by pid.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "$own_dir" = 1 ] && rm -rf "$lab"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$lab/logs"
# Copies, not symlinks: usernet's TFTP serves nothing that points outside its root.
cp "$kernel" "$lab/vmlinuz"
cp "$initrd" "$lab/initramfs.gz"
cat >"$lab/boot.ipxe" <<'IPXE'
#!ipxe
echo netboot-lab: ${net0/mac} got ${ip} from ${next-server}, loading the kernel
kernel tftp://${next-server}/vmlinuz console=ttyS0 quiet panic=-1 usernet.ip=dhcp
initrd tftp://${next-server}/initramfs.gz
boot
IPXE

# ---- usernet ---------------------------------------------------------------------
user="user,id=u0,tftp=$lab,bootfile=boot.ipxe,restrict=on,dns-upstream=127.0.0.1:53"
node "$main" -netdev "$user" -netdev "socket,id=s0,listen=127.0.0.1:$port" \
  >"$lab/logs/usernet.out" 2>"$lab/logs/usernet.err" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '^# attach a QEMU guest' "$lab/logs/usernet.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$lab/logs/usernet.err" >&2; exit 1; }
  sleep 0.1
done
grep -q '^# attach a QEMU guest' "$lab/logs/usernet.out" || { echo "netboot-lab: usernet did not start" >&2; exit 1; }
echo "netboot-lab: usernet serves $lab on 127.0.0.1:$port (logs in $lab/logs)"

# ---- Guests ------------------------------------------------------------------------
qemu_cmd() { # <mac>
  echo "qemu-system-x86_64 -nodefaults -no-user-config -display none -machine graphics=off -m 256 -accel $accel -boot n" \
    "-netdev socket,id=n0,connect=127.0.0.1:$port -device virtio-net-pci,netdev=n0,mac=$1 -serial stdio"
}
for i in $(seq 1 "$n"); do
  mac=$(printf '52:54:00:12:35:%02x' "$i")
  # shellcheck disable=SC2046  # the command line is split on purpose
  $(qemu_cmd "$mac") </dev/null >"$lab/logs/guest-$i.log" 2>&1 &
  pids+=($!)
  echo "netboot-lab: guest $i ($mac) booting; serial log $lab/logs/guest-$i.log"
done

failed=0
deadline=$((SECONDS + boot_timeout))
for i in $(seq 1 "$n"); do
  log="$lab/logs/guest-$i.log"
  until grep -q 'USERNET-GUEST-READY' "$log" 2>/dev/null; do
    if grep -q 'USERNET-GUEST-ERROR' "$log" || [ $SECONDS -ge $deadline ]; then break; fi
    sleep 0.5
  done
  if grep -q 'USERNET-GUEST-READY' "$log" && ! grep -q 'USERNET-GUEST-ERROR' "$log"; then
    addr=$(tr -d '\r' <"$log" | sed -n 's/.*udhcpc-lease: event=bound ip=\([0-9.]*\).*/\1/p' | tail -n1)
    echo "netboot-lab: guest $i is up at ${addr:-?} after ${SECONDS}s"
  else
    echo "netboot-lab: guest $i did not come up; the end of its serial log:" >&2
    tr -d '\r' <"$log" | tail -n 15 >&2
    failed=1
  fi
done

cat <<EOF2

Attach more guests to the same LAN (each needs its own MAC), e.g.:
  $(qemu_cmd 52:54:00:12:36:01)
The lab's TFTP root is $lab: edit boot.ipxe there to change what guests boot.
EOF2
if [ "$check" = 1 ]; then exit "$failed"; fi
echo "netboot-lab: running; Ctrl-C stops usernet and the guests"
wait "${pids[0]}"
