#!/usr/bin/env bash
# Builds the peers mmserve is measured against, llama.cpp's llama-server and whisper.cpp's
# whisper-server, from the same pinned sources and ggml flags scripts/deps.sh uses, into
# $MMSERVE_CACHE/peers-<key>/bin. Reused while the key matches. Prints the bin directory.
# llama-server's web UI download is switched off (no network beyond the package registries).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$("$here/../scripts/deps.sh" | tail -1)
cache=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
jobs=${MMSERVE_JOBS:-$(nproc)}
native=ON
[ "${MMSERVE_PORTABLE:-0}" = 1 ] && native=OFF

key=$( { basename "$prefix"; echo "native=$native"; sed -n '/^build_llama_server()/,$p' "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
out=$cache/peers-$key
log() { printf '[peers] %s\n' "$*" >&2; }

build_llama_server() {
  cmake -S "$prefix/src/llama.cpp" -B "$1/build-llama" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=$native -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF >&2
  cmake --build "$1/build-llama" --target llama-server -j "$jobs" >&2
  cp "$1/build-llama/bin/llama-server" "$1/bin/"
}

build_whisper_server() {
  cmake -S "$prefix/src/whisper.cpp" -B "$1/build-whisper" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=$native -DWHISPER_BUILD_EXAMPLES=ON \
    -DWHISPER_BUILD_SERVER=ON -DWHISPER_BUILD_TESTS=OFF -DWHISPER_SDL2=OFF -DWHISPER_CURL=OFF >&2
  cmake --build "$1/build-whisper" --target whisper-server -j "$jobs" >&2
  cp "$1/build-whisper/bin/whisper-server" "$1/bin/"
}

if [ ! -f "$out/.complete" ]; then
  rm -rf "$out"
  mkdir -p "$out/bin"
  t0=$SECONDS
  log "building llama-server and whisper-server from $prefix/src"
  build_llama_server "$out"
  build_whisper_server "$out"
  rm -rf "$out/build-llama" "$out/build-whisper"
  touch "$out/.complete"
  log "peers built in $((SECONDS - t0)) s"
fi
echo "$out/bin"
