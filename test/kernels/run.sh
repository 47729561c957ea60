#!/usr/bin/env bash
# The kernel matrix: boots Debian's own kernel packages under qemu with an
# initramfs of busybox, the static nspidtrace and guest-init.sh, and prints
# a table of kernel × check.
#
#   test/kernels/run.sh [SUITE...]      default: every suite in ALL below
#
# A suite is a Debian suite whose linux-image-amd64 names the kernel. The
# packages are fetched with `apt-get download` through a private apt
# configuration and unpacked with `dpkg-deb -x`: nothing is installed on the
# host, and the host's apt sources are left alone. Needs root only for
# `make deps` (qemu-system-x86, busybox-static).
#
# No KVM here: qemu runs TCG, single-threaded, since multi-threaded TCG makes
# guests oops while they patch syscall tracepoints. About 20 s of boot per
# kernel, and the checks on top.
set -euo pipefail
cd "$(dirname "$0")/../.."

ALL=(bullseye bookworm trixie sid experimental)
suites=("${@:-${ALL[@]}}")
work=${KERNELS_DIR:-/var/tmp/nspidtrace-kernels}
timeout=${KERNEL_TIMEOUT:-600}
mkdir -p "$work"

# A private apt: its own sources, lists and cache under $work.
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
{
	for s in "${suites[@]}"; do
		echo "deb [signed-by=$keyring] http://deb.debian.org/debian $s main"
	done
} >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1)
echo "--- apt-get update (${suites[*]})"
apt-get "${apt_opts[@]}" -qq update

# kernel SUITE: unpack SUITE's kernel under $work/SUITE and print its vmlinuz.
# The image package holds it (in /boot, or in /usr/lib/modules since 7.x),
# or a linux-binary-* package the image package depends on.
vmlinuz() {
	local f
	for f in "$1"/root/boot/vmlinuz-* "$1"/root/usr/lib/modules/*/vmlinuz; do
		if [ -f "$f" ]; then echo "$f" && return 0; fi
	done
	return 1
}
kernel() {
	local suite=$1 dir=$work/$1 pkg deps
	if [ -z "$(vmlinuz "$dir")" ]; then
		pkg=$(apt-cache "${apt_opts[@]}" show "linux-image-amd64/$suite" 2>/dev/null |
			sed -n 's/^Depends:.*\(linux-image-[^ ,]*\).*/\1/p' | head -1)
		[ -n "$pkg" ] || { echo "no linux-image-amd64 in $suite" >&2; return 1; }
		rm -rf "$dir" && mkdir -p "$dir/root"
		deps=$(apt-cache "${apt_opts[@]}" show "$pkg/$suite" |
			sed -n 's/^Depends: //p' | head -1 | tr ',' '\n' |
			sed -n 's/^ *\(linux-binary-[^ ]*\).*/\1/p')
		# apt's sandbox user cannot write here: download as root, quietly.
		(cd "$dir" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root -qq download \
			"$pkg/$suite" $(for d in $deps; do echo "$d/$suite"; done))
		for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
	fi
	vmlinuz "$dir" || { echo "no vmlinuz in $suite's packages" >&2; return 1; }
}

echo "--- build the static binary and the initramfs"
make -s build
rootfs=$work/initramfs
rm -rf "$rootfs" && mkdir -p "$rootfs"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
cp nspidtrace "$rootfs/bin/nspidtrace"
cp test/kernels/guest-init.sh "$rootfs/init"
chmod +x "$rootfs/init"
(cd "$rootfs" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"

checks=(start pid tree record from trace storm)
declare -A result version build
failed=0
for suite in "${suites[@]}"; do
	echo "--- $suite"
	log=$work/$suite.log
	if ! vmlinuz=$(kernel "$suite"); then
		version[$suite]=unavailable
		failed=1
		continue
	fi
	start=$SECONDS
	timeout "$timeout" qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 1536 \
		-nographic -no-reboot -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
		-append "console=ttyS0 panic=-1 oops=panic quiet loglevel=3" </dev/null >"$log" 2>&1 || true
	tr -d '\r' <"$log" >"$log.txt"
	version[$suite]=$(sed -n 's/.*NSPT-KERNEL //p' "$log.txt" | head -1)
	[ -n "${version[$suite]}" ] || version[$suite]="$(basename "$vmlinuz" | sed 's/^vmlinuz-//') (did not boot)"
	case "$(sed -n 's/.*NSPT-VERSION //p' "$log.txt")" in
	*"5.18 and newer"*) build[$suite]="5.18+" ;;
	*"to 5.17"*) build[$suite]="5.8-5.17" ;;
	*) build[$suite]="?" ;;
	esac
	for c in "${checks[@]}"; do
		r=$(sed -n "s/.*NSPT-CHECK $c \([a-zA-Z]*\).*/\1/p" "$log.txt" | head -1)
		result[$suite,$c]=${r:-none}
		# "lost": a line was missing, and the run said it lost events.
		[ "$r" = pass ] || [ "$r" = lost ] || failed=1
	done
	grep -q 'NSPT-DONE' "$log.txt" || failed=1
	echo "$suite: ${version[$suite]} in $((SECONDS - start)) s"
	grep -E 'NSPT-(CHECK .* (FAIL|lost)|WORKLOAD|TRACE|VERSION)|^  \| |panic|Oops|BUG:' "$log.txt" || true
done

echo
printf '| %-22s | %-9s |' kernel programs
for c in "${checks[@]}"; do printf ' %-6s |' "$c"; done
echo
printf '|%s|%s|' "$(printf -- '-%.0s' $(seq 24))" "$(printf -- '-%.0s' $(seq 11))"
for c in "${checks[@]}"; do printf -- '--------|'; done
echo
for suite in "${suites[@]}"; do
	printf '| %-22s | %-9s |' "${version[$suite]}" "${build[$suite]:-?}"
	for c in "${checks[@]}"; do printf ' %-6s |' "${result[$suite,$c]:-none}"; done
	echo
done
echo
echo "guest logs: $work/SUITE.log.txt"
exit $failed
