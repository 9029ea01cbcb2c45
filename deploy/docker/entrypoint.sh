#!/bin/sh
# The image's entrypoint: serves what the models directory (/models) holds, on 0.0.0.0:8080.
#
#   - /models/models.toml when present (docs/models.md; relative paths are relative to it);
#   - else the first *.gguf text model, with the first mmproj*.gguf as its projector, and the
#     first whisper.cpp model (ggml-*.bin, not a *silero*/*vad* one) with a *silero* VAD model.
#
# Arguments that start with '-' are added to `mmserve serve` (docker run IMAGE --parallel 8);
# anything else runs that mmserve command instead (docker run IMAGE keys list --db /data/x.db).
# Environment: MMSERVE_MODELS_DIR (default /models), MMSERVE_PORT (default 8080); every
# variable mmserve itself reads ($MMSERVE_API_KEY, $MMSERVE_DB, ...).
set -eu
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec mmserve "$@"
fi
dir=${MMSERVE_MODELS_DIR:-/models}
set -- --host 0.0.0.0 --port "${MMSERVE_PORT:-8080}" "$@"
if [ -f "$dir/models.toml" ]; then
  exec mmserve serve --models "$dir/models.toml" "$@"
fi
text="" mmproj="" whisper="" vad=""
for f in "$dir"/*.gguf; do
  [ -f "$f" ] || continue
  case "${f##*/}" in
    mmproj*) [ -n "$mmproj" ] || mmproj=$f ;;
    *) [ -n "$text" ] || text=$f ;;
  esac
done
for f in "$dir"/*.bin; do
  [ -f "$f" ] || continue
  case "${f##*/}" in
    *silero* | *vad*) [ -n "$vad" ] || vad=$f ;;
    ggml-*) [ -n "$whisper" ] || whisper=$f ;;
  esac
done
if [ -z "$text" ] && [ -z "$whisper" ]; then
  echo "mmserve: no model in $dir: mount a directory holding a *.gguf text model, a whisper.cpp ggml-*.bin, or a models.toml (docker run -v /data/models:/models ...)" >&2
  exit 1
fi
[ -z "$text" ] || set -- -m "$text" "$@"
[ -z "$text" ] || [ -z "$mmproj" ] || set -- --mmproj "$mmproj" "$@"
[ -z "$whisper" ] || set -- --whisper-model "$whisper" "$@"
[ -z "$whisper" ] || [ -z "$vad" ] || set -- --vad-model "$vad" "$@"
exec mmserve serve "$@"
