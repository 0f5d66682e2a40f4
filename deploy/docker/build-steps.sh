#!/bin/sh
# build-steps.sh - every step deploy/docker/Dockerfile runs, as one script, so that
# deploy/check.sh can run the very same steps on a machine without a container engine.
#
#   build-steps.sh deps                build stage: install the Debian build packages
#   build-steps.sh build SRC BUILD     build stage: cmake Release without tests
#                                      (-DCS_TESTS=OFF), all four services and crmsyncctl,
#                                      compiled once for every image
#   build-steps.sh stage BUILD OUT     build stage: OUT/bin (stripped binaries) and OUT/setup
#                                      (this script + runtime-packages: the Debian packages
#                                      that provide the binaries' shared libraries)
#   build-steps.sh runtime SETUP       runtime stage: install runtime-packages, create the
#                                      crmsync user (uid/gid 10001) and its state directories
#
# CS_DRY_RUN=1 (used by check.sh): `deps` and `runtime` only simulate apt-get (apt-get -s)
# and print what they would change, so the host is left as it is.
set -eu

# No cmocka, no python3: the image build configures without the tests (CS_TESTS=OFF).
BUILD_PKGS="build-essential cmake pkg-config ca-certificates
  libprotobuf-c-dev protobuf-c-compiler libnng-dev libmbedtls-dev libcurl4-openssl-dev
  libpq-dev libjsmn-dev"
SERVICES="store amo-sync hollihop-sync hook-gateway"
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
	apt-get clean
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
	[ $# -eq 3 ] || die "usage: build SRC BUILD"
	src=$2 build=$3
	for svc in $SERVICES; do
		[ -f "$src/services/$svc/CMakeLists.txt" ] || die "no service $svc in $src/services"
	done
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF >/dev/null
	# shellcheck disable=SC2046 # word splitting wanted: target names
	cmake --build "$build" -j"$(nproc)" --target $(for svc in $SERVICES; do printf 'crmsync-%s ' "$svc"; done) crmsyncctl
	;;
stage)
	[ $# -eq 3 ] || die "usage: stage BUILD OUT"
	build=$2 out=$3
	mkdir -p "$out/bin" "$out/setup"
	for bin in $(for svc in $SERVICES; do echo "$build/services/$svc/crmsync-$svc"; done) \
	    "$build/tools/crmsyncctl/crmsyncctl"; do
		[ -x "$bin" ] || die "missing $bin (run the build step first)"
		install -m 0755 "$bin" "$out/bin/"
		strip --strip-unneeded "$out/bin/$(basename "$bin")"
		! ldd "$bin" | grep -q 'not found' || die "$bin: $(ldd "$bin" | grep 'not found')"
	done
	# Every shared library the binaries load, mapped to its Debian package. One list for
	# all images: they share this layer (amo-sync and hollihop-sync need libcurl, every
	# image needs libpq for crmsyncctl).
	# shellcheck disable=SC2046 # word splitting wanted: library paths have no spaces
	lib_packages $(for bin in "$out"/bin/*; do
		ldd "$bin" | awk '/=> \// { print $3 }'
	done | sort -u) | sort -u >"$out/setup/runtime-packages"
	[ -s "$out/setup/runtime-packages" ] || die "no runtime packages found"
	cp "$0" "$out/setup/build-steps.sh"
	echo "build-steps: the binaries need: $(tr '\n' ' ' <"$out/setup/runtime-packages")"
	;;
runtime)
	[ $# -eq 2 ] || die "usage: runtime SETUP"
	setup=$2
	[ -s "$setup/runtime-packages" ] || die "empty $setup/runtime-packages"
	# shellcheck disable=SC2046,SC2086 # word splitting wanted: lists of package names
	apt_install $(cat "$setup/runtime-packages") $RUNTIME_EXTRA
	if [ "$DRY" = 1 ]; then
		echo "build-steps: (dry run) user crmsync ($CS_UID), /var/lib/crmsync/{$SERVICES} (0700)"
		exit 0
	fi
	groupadd --system --gid "$CS_UID" crmsync
	useradd --system --uid "$CS_UID" --gid crmsync --home-dir /var/lib/crmsync --no-create-home \
	    --shell /usr/sbin/nologin crmsync
	install -d -o crmsync -g crmsync -m 0700 /var/lib/crmsync
	for svc in $SERVICES; do
		install -d -o crmsync -g crmsync -m 0700 "/var/lib/crmsync/$svc"
	done
	;;
*)
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
