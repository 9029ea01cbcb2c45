#!/usr/bin/env bash
# Builds the peers mmserve is measured against, llama.cpp's llama-server and whisper.cpp's
# whisper-server, from the same pinned sources, into $MMSERVE_CACHE/peers-<key>/bin. Both link
# the very libggml scripts/deps.sh built for mmserve (LLAMA_USE_SYSTEM_GGML,
# WHISPER_USE_SYSTEM_GGML): the same kernels and CPU flags on both sides, so a ratio measures how
# each server drives the engine. (Building them with their own -march=native ggml, as before,
# gave them AMX kernels mmserve's ggml leaves out on purpose, see deps.sh.) Reused while the key
# matches. Prints the bin directory. llama-server's web UI download is switched off (no network
# beyond the package registries).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$("$here/../scripts/deps.sh" | tail -1)
cache=${MMSERVE_CACHE:-$HOME/.cache/mmserve}
jobs=${MMSERVE_JOBS:-$(nproc)}
key=$( { basename "$prefix"; sed -n '/^build_llama_server()/,$p' "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
out=$cache/peers-$key
log() { printf '[peers] %s\n' "$*" >&2; }

build_llama_server() {
  cmake -S "$prefix/src/llama.cpp" -B "$1/build-llama" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_USE_SYSTEM_GGML=ON -DCMAKE_PREFIX_PATH="$prefix" -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF >&2
  cmake --build "$1/build-llama" --target llama-server -j "$jobs" >&2
  cp "$1/build-llama/bin/llama-server" "$1/bin/"
}

build_whisper_server() {
  cmake -S "$prefix/src/whisper.cpp" -B "$1/build-whisper" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DWHISPER_USE_SYSTEM_GGML=ON -DCMAKE_PREFIX_PATH="$prefix" -DWHISPER_BUILD_EXAMPLES=ON \
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
  for peer in llama-server whisper-server; do  # the whole point: fail rather than measure another ggml
    ldd "$out/bin/$peer" | grep -q "$prefix/lib/libggml-cpu.so" ||
      { log "$peer does not load $prefix/lib/libggml-cpu.so:"; ldd "$out/bin/$peer" >&2; exit 1; }
  done
  touch "$out/.complete"
  log "peers built in $((SECONDS - t0)) s"
fi
echo "$out/bin"
