#!/bin/sh
# build.sh - build crmsync's five images with podman, from the repository:
#   crmsync/store, crmsync/amo-sync, crmsync/hollihop-sync, crmsync/hook-gateway
#       deploy/docker/Dockerfile: one build stage compiles all four services once, each
#       image is a target of it
#   crmsync/postgres   deploy/docker/postgres.Dockerfile (server B)
#
#   deploy/podman/build.sh [--tag TAG] [--force] [--sizes]
#     --tag TAG   tag to give every image (default: the content tag, see below)
#     --force     run podman build even when all five images of the tag exist
#     --sizes     print each image's size at the end
# Prints the tag on the last line of stdout (the rest goes to stderr).
#
# The default tag is a hash of every file that enters an image (.dockerignore's list) and
# of the base images' ids: when all five images of that tag exist, nothing is built (1 s);
# otherwise podman's layer cache still skips every unchanged step. Two worktrees with
# different sources never overwrite each other's images. Older content tags of the crmsync
# images are removed, the newest 3 kept. Images are built with --format docker (HEALTHCHECK
# is kept) and --pull=never (base images come from deploy/podman/setup.sh, not a registry).
set -eu
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF="$PWD/deploy/podman/containers.conf"
TAG="" SIZES=0 FORCE=0
while [ $# -gt 0 ]; do
	case $1 in
	--tag) TAG=${2:?--tag needs a value}; shift 2 ;;
	--sizes) SIZES=1; shift ;;
	--force) FORCE=1; shift ;;
	-h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
SERVICES="store amo-sync hollihop-sync hook-gateway"
KEEP=3

if [ -z "$TAG" ]; then
	# The context: what .dockerignore lets in, in a stable order, with file names.
	TAG=c$({
		podman image inspect --format '{{.Id}}' docker.io/library/debian:12 docker.io/library/debian:12-slim ||
		    echo "build.sh: no base images: run deploy/podman/setup.sh" >&2
		find CMakeLists.txt cmake proto lib services tools deploy/docker deploy/backup .dockerignore -type f -print |
		    LC_ALL=C sort | xargs sha256sum
	} | sha256sum | cut -c1-12)
fi
all_exist() {
	for img in $SERVICES postgres; do podman image exists "crmsync/$img:$TAG" || return 1; done
}
t0=$(date +%s)
if [ "$FORCE" = 0 ] && all_exist; then
	echo "build.sh: crmsync/*:$TAG exist, nothing to build" >&2
	SKIP=1
else
	SKIP=0
fi
build() {	# build IMAGE ARGS...: one podman build, its output on stderr
	img=$1
	shift
	s=$(date +%s)
	podman build --format docker --pull=never --layers -t "crmsync/$img:$TAG" "$@" . >&2 ||
	    { echo "build.sh: building crmsync/$img failed" >&2; exit 1; }
	echo "build.sh: crmsync/$img:$TAG built in $(($(date +%s) - s)) s" >&2
}
# The first target runs the build stage (the one compile); the others reuse its cached layers.
if [ "$SKIP" = 0 ]; then
	for svc in $SERVICES; do
		build "$svc" -f deploy/docker/Dockerfile --target "$svc"
	done
	build postgres -f deploy/docker/postgres.Dockerfile
	echo "build.sh: all images in $(($(date +%s) - t0)) s" >&2
fi

# Keep the newest $KEEP content tags of each image, drop the older ones (their layers are
# freed once no image uses them: podman image prune).
for img in $SERVICES postgres; do
	podman image ls --sort created --format '{{.Repository}}:{{.Tag}}' "localhost/crmsync/$img" |
	    grep ':c[0-9a-f]\{12\}$' | grep -v ":$TAG\$" | tail -n +"$KEEP" |
	    while read -r old; do podman image rm "$old" >/dev/null 2>&1 || true; done
done
if [ "$SIZES" = 1 ]; then
	for img in $SERVICES postgres; do
		podman image ls --format "{{.Repository}}:{{.Tag}} {{.Size}}" "localhost/crmsync/$img" |
		    grep ":$TAG " >&2
	done
fi
echo "$TAG"
