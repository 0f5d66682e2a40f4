#!/bin/sh
# build-steps.sh - every step the crmsync Dockerfiles run, as one script, so that
# deploy/check.sh can run the very same steps on a machine without a container engine.
#
#   build-steps.sh deps                      build stage: install the Debian build packages
#   build-steps.sh build SRC BUILD SERVICE   build stage: cmake Release, crmsync-SERVICE + crmsyncctl
#   build-steps.sh stage BUILD OUT SERVICE   build stage: OUT/rootfs (stripped binaries) and
#                                            OUT/setup (this script + runtime-packages: the Debian
#                                            packages that provide the binaries' shared libraries)
#   build-steps.sh runtime SETUP SERVICE     runtime stage: install runtime-packages, create the
#                                            crmsync user (uid/gid 10001) and its state directory
#
# CS_DRY_RUN=1 (used by check.sh): `deps` and `runtime` only simulate apt-get (apt-get -s)
# and print what they would change, so the host is left as it is.
set -eu

BUILD_PKGS="build-essential cmake pkg-config ca-certificates
  libprotobuf-c-dev protobuf-c-compiler libnng-dev libmbedtls-dev libcurl4-openssl-dev
  libpq-dev libjsmn-dev libcmocka-dev"
# Not linked, but needed at run time: CA bundle for HTTPS to the CRMs, zone data for
# Hollihop's local timestamps.
RUNTIME_EXTRA="ca-certificates tzdata"
CS_UID=10001
DRY=${CS_DRY_RUN:-0}

die() { echo "build-steps: $*" >&2; exit 1; }

apt_install() {
	if [ "$DRY" = 1 ]; then
		apt-get install -s --no-install-recommends "$@" >/dev/null ||
		    die "apt-get cannot resolve: $*"
		echo "build-steps: (dry run) apt-get install $*"
		return
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "$@"
	rm -rf /var/lib/apt/lists/*
}

# The Debian packages that ship the shared libraries given as arguments (ldd may print
# /lib or /usr/lib; dpkg knows one of them). One dpkg-query for all: it is slow per call.
lib_packages() {
	map=$(for l in "$@"; do
		for c in "$l" "$(readlink -f "$l")" "/usr$l" "${l#/usr}"; do echo "$c"; done
	done | sort -u | xargs dpkg-query -S 2>/dev/null || true)
	for l in "$@"; do
		pkg=$(printf '%s\n' "$map" | awk -v l="$l" -v r="$(readlink -f "$l")" '{
			path = $NF; pkg = $1; sub(/:.*/, "", pkg); sub(/,$/, "", pkg)
			if (path == l || path == r || path == "/usr" l || "/usr" path == l) { print pkg; exit }
		}')
		[ -n "$pkg" ] || die "no Debian package ships $l"
		echo "$pkg"
	done
}

case "${1:-}" in
deps)
	# shellcheck disable=SC2086 # word splitting wanted: a list of package names
	apt_install $BUILD_PKGS
	;;
build)
	[ $# -eq 4 ] || die "usage: build SRC BUILD SERVICE"
	src=$2 build=$3 svc=$4
	[ -f "$src/services/$svc/CMakeLists.txt" ] || die "no service $svc in $src/services"
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc)" --target "crmsync-$svc" crmsyncctl
	;;
stage)
	[ $# -eq 4 ] || die "usage: stage BUILD OUT SERVICE"
	build=$2 out=$3 svc=$4
	mkdir -p "$out/rootfs/usr/local/bin" "$out/setup"
	for bin in "$build/services/$svc/crmsync-$svc" "$build/tools/crmsyncctl/crmsyncctl"; do
		[ -x "$bin" ] || die "missing $bin (run the build step first)"
		install -m 0755 "$bin" "$out/rootfs/usr/local/bin/"
		strip --strip-unneeded "$out/rootfs/usr/local/bin/$(basename "$bin")"
	done
	# Every shared library the two binaries load, mapped to its Debian package.
	for bin in "$out"/rootfs/usr/local/bin/*; do
		! ldd "$bin" | grep -q 'not found' || die "$bin: $(ldd "$bin" | grep 'not found')"
	done
	# shellcheck disable=SC2046 # word splitting wanted: library paths have no spaces
	lib_packages $(for bin in "$out"/rootfs/usr/local/bin/*; do
		ldd "$bin" | awk '/=> \// { print $3 }'
	done | sort -u) >"$out/setup/runtime-packages.all"
	sort -u "$out/setup/runtime-packages.all" >"$out/setup/runtime-packages"
	rm "$out/setup/runtime-packages.all"
	[ -s "$out/setup/runtime-packages" ] || die "no runtime packages found"
	cp "$0" "$out/setup/build-steps.sh"
	echo "build-steps: $svc needs: $(tr '\n' ' ' <"$out/setup/runtime-packages")"
	;;
runtime)
	[ $# -eq 3 ] || die "usage: runtime SETUP SERVICE"
	setup=$2 svc=$3
	[ -s "$setup/runtime-packages" ] || die "empty $setup/runtime-packages"
	# shellcheck disable=SC2046,SC2086 # word splitting wanted: lists of package names
	apt_install $(cat "$setup/runtime-packages") $RUNTIME_EXTRA
	if [ "$DRY" = 1 ]; then
		echo "build-steps: (dry run) user crmsync ($CS_UID), /var/lib/crmsync/$svc (0700)"
		exit 0
	fi
	groupadd --system --gid "$CS_UID" crmsync
	useradd --system --uid "$CS_UID" --gid crmsync --home-dir /var/lib/crmsync --no-create-home \
	    --shell /usr/sbin/nologin crmsync
	install -d -o crmsync -g crmsync -m 0700 /var/lib/crmsync "/var/lib/crmsync/$svc"
	;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
