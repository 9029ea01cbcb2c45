#!/usr/bin/env bash
# Installs everything mmserve needs to build and test, idempotently:
#   1. Debian packages (only those missing), with apt-get;
#   2. llama.cpp (ggml, libllama, libmtmd, and its `common` library: Jinja chat templates,
#      JSON-schema-to-grammar, tool-call and reasoning parsers, what llama-server uses) and
#      whisper.cpp, fetched from the npm registry with `npm pack`, checked against pinned hashes,
#      built as shared libraries sharing one libggml, and installed into a versioned prefix under
#      the cache. llama.cpp installs no `common`: its library and headers are copied in by hand.
# The prefix is reused while its key (versions, flags, this script) matches, so a warm run costs
# seconds. The last line printed on stdout is the prefix; everything else goes to stderr.
#
# Environment:
#   MMSERVE_CACHE     cache root (default ~/.cache/mmserve)
#   MMSERVE_PORTABLE  1: portable CPU build (ggml's all-variant CPU backends, loaded at run time)
#   MMSERVE_CUDA      1: build ggml's CUDA backend (needs nvcc)
#   MMSERVE_NO_APT    1: skip the Debian package step
#   MMSERVE_APT_SCOPE build: install only what building mmserve needs (default: all, tests too)
#   MMSERVE_JOBS      parallel build jobs (default: nproc)
set -euo pipefail

LLAMA_NPM=node-llama-cpp@3.22.1
LLAMA_NPM_SHA256=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
LLAMA_VERSION=0.5.0
WHISPER_NPM=nodejs-whisper@0.3.1
WHISPER_NPM_SHA256=92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37
WHISPER_VERSION=1.9.1

# What building mmserve needs (the container image's build stage installs only these) ...
BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  nlohmann-json3-dev libssl-dev
  libjpeg-dev libpng-dev libgif-dev libwebp-dev libstb-dev
  libavformat-dev libavcodec-dev libswresample-dev libavutil-dev zlib1g-dev
  libtomlplusplus-dev libre2-dev libsqlite3-dev libcurl4-openssl-dev
)
# ... and what its tests, sanitizers, fuzzers, SDK and benchmarks need besides.
TEST_PACKAGES=(
  libgtest-dev libgmock-dev
  python3 python3-pytest pybind11-dev python3-dev python3-venv python3-requests
  ffmpeg sox prometheus
  clang libclang-rt-14-dev
  sqlite3 curl openssl strace systemd python3-yaml python3-jsonschema chromium
)
APT_PACKAGES=("${BUILD_PACKAGES[@]}")
[ "${MMSERVE_APT_SCOPE:-all}" = build ] || APT_PACKAGES+=("${TEST_PACKAGES[@]}")

log() { printf '[deps] %s\n' "$*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
jobs=${MMSERVE_JOBS:-$(nproc)}
portable=${MMSERVE_PORTABLE:-0}
cuda=${MMSERVE_CUDA:-0}

install_apt_packages() {
  [ "${MMSERVE_NO_APT:-0}" = 1 ] && return 0
  command -v dpkg-query >/dev/null || { log "not a Debian system: install ${APT_PACKAGES[*]} yourself"; return 0; }
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # Node.js may come from elsewhere than Debian (it brings its own npm): only the command matters.
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ggml flags shared by both builds; they are part of the cache key.
ggml_flags() {
  local f=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON "-DCMAKE_INSTALL_RPATH=\$ORIGIN"
           -DCMAKE_INSTALL_LIBDIR=lib)
  if [ "$portable" = 1 ]; then
    f+=(-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON)
  elif grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    # A CPU with AMX: every x86 extension but AMX, named one by one (-march=native would take
    # AMX too). ggml's AMX kernels die with SIGILL on some virtual machines that advertise AMX
    # (Firecracker: `tilezero` faults in tinygemm_kernel_amx on Q8_0 and Q4 weights), and a
    # server must not depend on what the hypervisor passes through; AVX-512 VNNI does the work.
    f+=(-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
        -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON
        -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
    grep -qw avx_vnni /proc/cpuinfo && f+=(-DGGML_AVX_VNNI=ON)
  else
    f+=(-DGGML_NATIVE=ON)
  fi
  if [ "$cuda" = 1 ]; then
    command -v nvcc >/dev/null || { log "MMSERVE_CUDA=1 but nvcc is not on PATH: install the CUDA toolkit"; exit 1; }
    f+=(-DGGML_CUDA=ON)
  fi
  printf '%s\n' "${f[@]}"
}

fetch_npm() { # name@version sha256 -> path of the verified tarball
  local spec=$1 sha=$2 dl=$cache/downloads
  mkdir -p "$dl"
  local file=$dl/$(echo "${spec%@*}" | tr -d '@' | tr '/' '-')-${spec##*@}.tgz
  if [ ! -f "$file" ] || ! echo "$sha  $file" | sha256sum -c --status; then
    log "fetching $spec from the npm registry"
    (cd "$dl" && npm pack --silent "$spec" >/dev/null)
  fi
  echo "$sha  $file" | sha256sum -c --status || { log "hash mismatch for $file (want $sha)"; exit 1; }
  echo "$file"
}

# llama.cpp's common library (libllama-common.so and its static build-info part) with its headers
# under include/llama-common; its JSON type is a pimpl, so no nlohmann header comes with them.
install_llama_common() {
  local work=$1 prefix=$2 common=$1/llama.cpp/common
  cp -P "$work"/build-llama/bin/libllama-common.so* "$prefix/lib/" 2>/dev/null ||
    cp -P "$work"/build-llama/common/libllama-common.so* "$prefix/lib/"
  cp "$(find "$work/build-llama" -name 'libllama-common-base.a' | head -1)" "$prefix/lib/"
  mkdir -p "$prefix/include/llama-common/jinja"
  cp "$common"/*.h "$common"/*.hpp "$prefix/include/llama-common/"
  cp "$common"/jinja/*.h "$prefix/include/llama-common/jinja/"
}

build_libraries() {
  local prefix=$1 work
  work=$(mktemp -d "$cache/build.XXXXXX")
  mapfile -t flags < <(ggml_flags)

  local llama_tgz whisper_tgz
  llama_tgz=$(fetch_npm "$LLAMA_NPM" "$LLAMA_NPM_SHA256")
  whisper_tgz=$(fetch_npm "$WHISPER_NPM" "$WHISPER_NPM_SHA256")

  log "unpacking llama.cpp $LLAMA_VERSION and whisper.cpp $WHISPER_VERSION"
  tar -xzf "$llama_tgz" -C "$work" package/llama/gitRelease.bundle
  git clone -q "$work/package/llama/gitRelease.bundle" "$work/llama.cpp" 2>/dev/null
  rm -rf "$work/package"
  tar -xzf "$whisper_tgz" -C "$work" package/cpp/whisper.cpp
  mv "$work/package/cpp/whisper.cpp" "$work/whisper.cpp"

  log "building ggml + libllama + libmtmd (${#flags[@]} flags, $jobs jobs)"
  cmake -S "$work/llama.cpp" -B "$work/build-llama" -G Ninja "${flags[@]}" \
    -DCMAKE_INSTALL_PREFIX="$prefix" \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_MTMD=ON -DLLAMA_OPENSSL=OFF -DLLAMA_SUBPROCESS=OFF -DMTMD_VIDEO=OFF \
    -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT=v$LLAMA_VERSION >&2
  cmake --build "$work/build-llama" -j "$jobs" >&2
  cmake --install "$work/build-llama" >&2
  install_llama_common "$work" "$prefix"
  # The portable build's AMX variant would be chosen wherever AMX is advertised, and its kernels
  # die with SIGILL on virtual machines that advertise it without passing it through (see
  # ggml_flags): the next best variant (AVX-512 VNNI/BF16) serves those CPUs instead.
  rm -f "$prefix"/lib/libggml-cpu-sapphirerapids.so "$prefix"/bin/libggml-cpu-sapphirerapids.so

  log "building whisper.cpp against that libggml"
  cmake -S "$work/whisper.cpp" -B "$work/build-whisper" -G Ninja "${flags[@]}" \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_PREFIX_PATH="$prefix" \
    -DWHISPER_USE_SYSTEM_GGML=ON -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=OFF \
    -DWHISPER_BUILD_SERVER=OFF -DWHISPER_SDL2=OFF -DWHISPER_CURL=OFF >&2
  cmake --build "$work/build-whisper" -j "$jobs" >&2
  cmake --install "$work/build-whisper" >&2
  mkdir -p "$prefix/bin"  # whisper-config.cmake checks that its bin directory exists

  # Keep the pinned sources beside the prefix: the benchmarks build the peer servers from them.
  mkdir -p "$prefix/src"
  mv "$work/llama.cpp" "$prefix/src/llama.cpp"
  mv "$work/whisper.cpp" "$prefix/src/whisper.cpp"
  rm -rf "$work"
}

main() {
  install_apt_packages
  mkdir -p "$cache"
  local key
  # The key covers what changes the built libraries (pinned versions, flags, the build steps),
  # not the Debian package list, so adding a package does not rebuild the engines.
  key=$( { echo "$LLAMA_NPM $LLAMA_NPM_SHA256 $WHISPER_NPM $WHISPER_NPM_SHA256"; ggml_flags;
           declare -f build_libraries install_llama_common fetch_npm; } | sha256sum | cut -c1-12)
  local prefix=$cache/deps-llama$LLAMA_VERSION-whisper$WHISPER_VERSION-$key
  if [ ! -f "$prefix/.complete" ]; then
    rm -rf "$prefix"
    local t0=$SECONDS
    build_libraries "$prefix"
    touch "$prefix/.complete"
    log "dependencies built in $((SECONDS - t0)) s into $prefix"
  fi
  echo "$prefix"
}

main "$@"
