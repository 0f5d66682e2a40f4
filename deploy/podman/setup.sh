#!/bin/sh
# setup.sh - podman for crmsync on a Debian 12 machine without access to an image registry:
# installs the packages, points podman at this directory's containers.conf, and makes the
# Debian 12 base images from Debian packages (mmdebstrap), once per machine.
#
#   deploy/podman/setup.sh            packages (if missing) + base images (if missing)
#   deploy/podman/setup.sh --check    exit 0 if everything is in place, 77 if not (no changes)
#   deploy/podman/setup.sh --rebase   make the base images again (e.g. after Debian updates)
#   . deploy/podman/env.sh            then podman, podman-compose use the project's settings
#
# Base images (tags as FROM lines and docker.io name them, so the Dockerfiles are the same
# for Docker and podman, and podman never tries a registry):
#   docker.io/library/debian:12        Debian minbase (essential packages + apt)
#   docker.io/library/debian:12-slim   the same without docs, man pages and locales, and
#                                      a dpkg config that keeps them out of later installs
# Needs root (apt-get, mmdebstrap, rootful podman). Idempotent; a second run takes ~1 s.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="$HERE/containers.conf"
PKGS="podman runc conmon netavark aardvark-dns catatonit iptables mmdebstrap podman-compose"
BASE=docker.io/library/debian:12
SLIM=docker.io/library/debian:12-slim
MODE=${1:-setup}
# The recipe's version, as a label on both images: a machine with images of an older
# recipe gets new ones on the next run.
RECIPE=2

say() { echo "podman-setup: $*"; }
die() { echo "podman-setup: $*" >&2; exit 1; }

missing_pkgs() {
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$p"
	done
}
have_image() {
	command -v podman >/dev/null && podman image exists "$1" 2>/dev/null &&
	    [ "$(podman image inspect --format '{{index .Labels "org.crmsync.base-recipe"}}' "$1" 2>/dev/null)" = "$RECIPE" ]
}

case $MODE in
--check)
	[ -z "$(missing_pkgs)" ] || { say "missing packages:$(missing_pkgs)"; exit 77; }
	have_image "$BASE" && have_image "$SLIM" || { say "no base images (run deploy/podman/setup.sh)"; exit 77; }
	podman info >/dev/null 2>&1 || { say "podman info fails"; exit 77; }
	exit 0
	;;
setup | --rebase) ;;
-h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) die "unknown argument $MODE (see --help)" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (apt-get, mmdebstrap, rootful podman)"

m=$(missing_pkgs)
if [ -n "$m" ]; then
	say "installing$m"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	# shellcheck disable=SC2086 # a list of package names
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $m >/dev/null
fi
podman info >/dev/null || die "podman does not work with $CONTAINERS_CONF"

if [ "$MODE" = --rebase ] || ! have_image "$BASE" || ! have_image "$SLIM"; then
	say "making the Debian 12 base images with mmdebstrap (once per machine, 1-3 min)"
	t0=$(date +%s)
	old=$(podman image ls -q --filter reference="$BASE" --filter reference="$SLIM" 2>/dev/null || true)
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/crmsync-base.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 1' INT TERM
	# No mirror argument: mmdebstrap uses this machine's apt sources (the Debian mirror,
	# bookworm-updates, security), so the images are as current as the host.
	# merged-usr hook: /usr merged by mmdebstrap itself, as debootstrap does for Debian's
	# images, instead of the usrmerge package (which drags in a full perl, ~50 MB).
	mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	    --aptopt='Acquire::Languages "none"' bookworm "$tmp/root" ||
	    die "mmdebstrap failed"
	# The build stage's apt-get must not find the host's proxy settings etc.: nothing of
	# the host is copied, mmdebstrap wrote a fresh root.
	rm -rf "$tmp/root/var/lib/apt/lists"/* "$tmp/root/var/cache/apt"/*.bin
	# As Debian's official images: apt keeps no .deb files nor caches in image layers.
	cat >"$tmp/root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	import() {	# import IMAGE: the root directory as a one-layer image
		tar -C "$tmp/root" --numeric-owner -cf - . | podman import -q --change 'CMD ["bash"]' \
		    --change "LABEL org.crmsync.base-recipe=$RECIPE" - "$1" >/dev/null
	}
	import "$BASE"
	# The slim variant, as Debian's official debian:12-slim: no docs, man pages or
	# locales now, nor in any package installed later.
	cat >"$tmp/root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# crmsync base image (deploy/podman/setup.sh): keep docs, man pages and locales out
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
	find "$tmp/root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$tmp/root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$tmp/root/usr/share/man"/* "$tmp/root/usr/share/info"/* "$tmp/root/usr/share/locale"/* \
	    "$tmp/root/usr/share/groff"/* "$tmp/root/usr/share/lintian"/*
	import "$SLIM"
	# The images they replace, if nothing else uses them (a build may still refer to them).
	# shellcheck disable=SC2086 # a list of image ids
	[ -z "$old" ] || podman image rm $old >/dev/null 2>&1 || true
	say "base images ready in $(($(date +%s) - t0)) s: $(podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
	    grep 'library/debian:12' | tr '\n' ' ')"
fi
say "ready (CONTAINERS_CONF=$CONTAINERS_CONF)"
