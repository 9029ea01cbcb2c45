#!/usr/bin/env bash
# Builds mmserve's container image (deploy/docker/Dockerfile) with docker, or podman when there is
# no docker, tagged mmserve:VERSION (and mmserve:latest), labelled with the hash of the sources it
# was built from; an image already built from the same sources is reused.
#
#   scripts/image.sh [cpu|cuda]     prints the image reference on stdout's last line
#
# On machines without a registry (the development machines: ../shared/containers/README.md),
# podman gets the runc and rlimit settings of containers.conf and a local debian:bookworm-slim
# made with debootstrap; the engine tarballs come from the host's cache (~/.cache/mmserve).
# Environment: MMSERVE_ENGINE (docker|podman), MMSERVE_IMAGE (repository, default mmserve).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
variant=${1:-cpu}
log() { printf '[image] %s\n' "$*" >&2; }
version=$(sed -n 's/^project(mmserve VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
repo=${MMSERVE_IMAGE:-mmserve}
case "$variant" in
  cpu) file=deploy/docker/Dockerfile tag="$repo:$version" ;;
  cuda) file=deploy/docker/Dockerfile.cuda tag="$repo:$version-cuda" ;;
  *) log "unknown variant '$variant' (cpu or cuda)"; exit 2 ;;
esac

engine=${MMSERVE_ENGINE:-}
if [ -z "$engine" ]; then
  # A docker CLI without a daemon it can reach does not count.
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; else engine=podman; fi
fi
apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  log "installing $*"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}
if [ "$engine" = podman ]; then
  missing=()
  for c in podman runc catatonit; do command -v "$c" >/dev/null || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || apt_install podman buildah runc uidmap slirp4netns fuse-overlayfs catatonit
fi
shared=$here/../shared/containers
if [ "$engine" = podman ] && [ -f "$shared/containers.conf" ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF=$shared/containers.conf
fi
if ! $engine image exists docker.io/library/debian:bookworm-slim 2>/dev/null &&
   ! $engine image inspect debian:bookworm-slim >/dev/null 2>&1; then
  if [ -x "$shared/mkbase.sh" ]; then
    log "no debian:bookworm-slim and no registry here: making it with debootstrap"
    command -v debootstrap >/dev/null || apt_install debootstrap
    "$shared/mkbase.sh" >&2
  fi
fi

# The sources the image is made of: tracked and untracked-but-not-ignored files, as the build
# context holds them
# (not tests/, docs/, bench/ or the top-level *.md: .dockerignore)
source_hash=$( { git ls-files -co --exclude-standard | grep -v -E '^(tests|docs|bench)/|^[^/]*\.md$' |
                 LC_ALL=C sort | tr '\n' '\0' | xargs -0 sha256sum 2>/dev/null; echo "$variant"; } |
               sha256sum | cut -c1-16)
if [ "$($engine image inspect --format '{{ index .Config.Labels "org.mmserve.source" }}' "$tag" 2>/dev/null || true)" = "$source_hash" ]; then
  log "$tag is up to date (sources $source_hash)"
  echo "$tag"
  exit 0
fi
extra=()
downloads=${MMSERVE_CACHE:-$HOME/.cache/mmserve}/downloads
if [ "$engine" = podman ] && [ -d "$downloads" ]; then
  extra+=(-v "$downloads:/cache/downloads:ro")  # the verified engine tarballs: no npm needed
fi
# The Dockerfile's HEALTHCHECK exists only in docker's image format (podman defaults to OCI's).
[ "$engine" = podman ] && extra+=(--format docker)
log "building $tag with $engine (sources $source_hash)"
t0=$SECONDS
latest=$repo:latest; [ "$variant" = cuda ] && latest=$repo:latest-cuda
$engine build -f "$file" -t "$tag" -t "$latest" \
  --label "org.mmserve.source=$source_hash" --label "org.opencontainers.image.version=$version" \
  "${extra[@]}" . >&2
log "built $tag in $((SECONDS - t0)) s; size $($engine image inspect --format '{{.Size}}' "$tag") bytes"
echo "$tag"
