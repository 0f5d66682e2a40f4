# env.sh - from the repository root, `. deploy/podman/env.sh` before podman or
# podman-compose for crmsync: the project's containers.conf (runc, cgroupfs, rlimits this
# VM can apply; /etc/containers stays untouched), and docker image format for every build,
# so HEALTHCHECK is kept (OCI images have none; `podman-compose build` passes no --format).
# shellcheck shell=sh
if [ -f deploy/podman/containers.conf ]; then
	CONTAINERS_CONF="$(pwd)/deploy/podman/containers.conf"
	export CONTAINERS_CONF
	export BUILDAH_FORMAT=docker
else
	echo "deploy/podman/env.sh: source it from the repository root" >&2
fi
