#!/usr/bin/env bash
# The container image's build stage, last step: stages what the runtime image needs.
#
#   scripts/image_stage.sh DEPS_PREFIX MMSERVE_BINARY OUT
#
# OUT/opt/mmserve/bin gets the mmserve executable and the engines' shared libraries (ggml and its
# CPU backend variants, which ggml loads at run time from the executable's directory, libllama,
# libmtmd, libwhisper); with no CPU backend it fails, since the image could run no model; OUT/runtime-packages.txt the Debian packages of every other library they
# link (found with ldd and dpkg -S), for the runtime stage to install and nothing more.
set -euo pipefail
prefix=$1 binary=$2 out=$3
bin=$out/opt/mmserve/bin
mkdir -p "$bin"
install -m 0755 "$binary" "$bin/mmserve"
strip --strip-unneeded "$bin/mmserve"
# ggml installs the backends it loads at run time (GGML_BACKEND_DL: the CPU variants, CUDA) into
# bin/, beside the executables it expects to load them; the libraries go to lib/.
for lib in "$prefix"/lib/lib*.so* "$prefix"/bin/libggml-*.so; do
  [ -e "$lib" ] && cp -P "$lib" "$bin/"
done
if ! ls "$bin"/libggml-cpu*.so >/dev/null 2>&1; then
  echo "image_stage: no ggml CPU backend in $prefix (lib/ or bin/)" >&2
  exit 1
fi
find "$bin" -name '*.so*' -type f -exec strip --strip-unneeded {} +
# Every library the files link that is not one of ours: its Debian package.
LD_LIBRARY_PATH=$bin ldd "$bin"/mmserve "$bin"/*.so* 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  while read -r path; do
    case "$path" in "$bin"/*) continue ;; esac
    dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path"
  done | cut -d: -f1 | sort -u > "$out/runtime-packages.txt"
echo "image_stage: $(ls "$bin" | wc -l) files in $bin; runtime packages: $(tr '\n' ' ' < "$out/runtime-packages.txt")" >&2
