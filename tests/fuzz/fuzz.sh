#!/usr/bin/env bash
# Runs the libFuzzer harnesses (tests/fuzz/README.md).
#
#   fuzz.sh replay   HARNESS CORPUS              every file of CORPUS once (a regression test)
#   fuzz.sh brief    HARNESS CORPUS WORK SECONDS fuzz from CORPUS; new inputs and crashes go to WORK
#   fuzz.sh campaign BUILD_DIR SECONDS [NAME...] each harness of BUILD_DIR (or the NAMEs) for
#                    SECONDS, one after another, going on past crashes (-fork=1); new inputs that
#                    add coverage are merged into the committed corpus (-merge=1); prints
#                    CPU seconds, executions, coverage and crashes; exits 1 when something crashed
#   fuzz.sh minimize BUILD_DIR [NAME...]         shrink the corpora's libFuzzer-named entries to a
#                    minimal set (the named seeds are kept as they are)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Per input: a hang or a runaway allocation is a finding.
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024)

# Rebuilds CORPUS's libFuzzer-named entries (40 hex digits) as the smallest set that, with the
# named seeds (kept as they are), covers everything CORPUS and the EXTRA directories cover.
minimize() {
  local bin=$1 corpus=$2 tmp=$3
  shift 3
  rm -rf "$tmp/min" "$tmp/found"
  mkdir -p "$tmp/min" "$tmp/found"
  for f in "$corpus"/*; do
    [ -f "$f" ] || continue
    if [[ ${f##*/} =~ ^[0-9a-f]{40}$ ]]; then cp "$f" "$tmp/found/"; else cp "$f" "$tmp/min/"; fi
  done
  "$bin" "${limits[@]}" -merge=1 "$tmp/min" "$tmp/found" "$@" || return 1
  find "$corpus" -maxdepth 1 -type f -regextype egrep -regex '.*/[0-9a-f]{40}' -delete
  for f in "$tmp/min"/*; do
    [[ ${f##*/} =~ ^[0-9a-f]{40}$ ]] && cp "$f" "$corpus/"
  done
  return 0
}

mode=${1:-}
case "$mode" in
  replay)
    [ $# -eq 3 ] || { echo "usage: $0 replay HARNESS CORPUS" >&2; exit 2; }
    exec "$2" "${limits[@]}" -runs=0 "$3"
    ;;
  brief)
    [ $# -eq 5 ] || { echo "usage: $0 brief HARNESS CORPUS WORK SECONDS" >&2; exit 2; }
    harness=$2 corpus=$3 work=$4 seconds=$5
    rm -rf "$work/new"
    mkdir -p "$work/new" "$work/crashes"
    exec "$harness" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$work/crashes/" "$work/new" "$corpus"
    ;;
  campaign)
    [ $# -ge 3 ] || { echo "usage: $0 campaign BUILD_DIR SECONDS [NAME...]" >&2; exit 2; }
    build=$2 seconds=$3
    shift 3
    names=("$@")
    if [ ${#names[@]} -eq 0 ]; then
      for bin in "$build"/fuzz_*; do
        [ -x "$bin" ] && [ -f "$bin" ] && names+=("${bin##*/fuzz_}")
      done
    fi
    [ ${#names[@]} -gt 0 ] || { echo "no harnesses in $build (make fuzz-build)" >&2; exit 2; }
    summary=()
    failed=0
    for name in "${names[@]}"; do
      bin=$build/fuzz_$name corpus=$here/corpus/$name
      crashes=$build/tests/fuzz/crashes/$name
      tmp=$(mktemp -d)
      mkdir -p "$corpus" "$crashes" "$tmp/new"
      touch "$tmp/stamp"
      echo "== fuzz_$name: ${seconds} CPU seconds (logs: $tmp/log.*)"
      # Fork mode keeps fuzzing past a crash (each one is written to $crashes); new inputs go to
      # $tmp/new, and only those adding coverage are merged into the committed corpus. SECONDS are
      # CPU seconds (user+sys of the fuzzer and its forked worker): on a loaded machine a wall
      # second is less, so rounds go on until the harness has had its CPU time.
      TIMEFORMAT='%3U %3S'
      cpu=0 execs=0 wall=0 found_total=0 round=0 last=""
      while [ "$cpu" -lt "$seconds" ]; do
        round=$((round + 1))
        budget=$((seconds - cpu))
        [ "$budget" -ge 30 ] || budget=30
        { time "$bin" "${limits[@]}" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
          -max_total_time="$budget" -artifact_prefix="$crashes/" "$tmp/new" "$corpus" \
          >"$tmp/log.$round" 2>&1 || true; } 2>"$tmp/cpu.$round"
        cpu=$((cpu + $(awk '{printf "%.0f", $1 + $2}' "$tmp/cpu.$round")))
        last=$(grep -E '^#[0-9]+: cov:' "$tmp/log.$round" | tail -1 || true)
        execs=$((execs + $(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last" | grep . || echo 0)))
        wall=$((wall + $(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last" | grep . || echo 0)))
        n=$(sed -nE 's/.*oom\/timeout\/crash: ([0-9]+)\/([0-9]+)\/([0-9]+).*/\1+\2+\3/p' <<<"$last")
        found_total=$((found_total + ${n:-0}))
      done
      minimize "$bin" "$corpus" "$tmp" "$tmp/new" >"$tmp/merge.log" 2>&1 || true
      rate=$([ "$cpu" -gt 0 ] && echo $((execs / cpu)) || echo "?")
      cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last")
      found=$found_total
      added=$(grep -oE '[0-9]+ new files with [0-9]+ new features added' "$tmp/merge.log" | tail -1)
      if [ "$found" != 0 ]; then
        failed=1
        find "$crashes" -type f -newer "$tmp/stamp" | while read -r f; do
          echo "   $f: $("$bin" "$f" 2>&1 | grep -m1 -E 'ERROR: [A-Za-z]+Sanitizer|==fuzz invariant==|==no_io_guard==|runtime error|ERROR: libFuzzer' || true)"
        done
      fi
      summary+=("$(printf '%-26s cpu %5ss wall %5ss execs %-10s exec/cpu-s %-6s %-20s findings %-3s merged: %s' \
        "fuzz_$name" "$cpu" "$wall" "$execs" "$rate" "${cov:-cov: ?}" "$found" "${added:-0 new files}")")
      if [ "$found" = 0 ]; then rm -rf "$tmp"; fi
    done
    printf '%s\n' "" "summary (corpus: $here/corpus, crashes: $build/tests/fuzz/crashes):" "${summary[@]}"
    exit $failed
    ;;
  minimize)
    [ $# -ge 2 ] || { echo "usage: $0 minimize BUILD_DIR [NAME...]" >&2; exit 2; }
    build=$2
    shift 2
    names=("$@")
    [ ${#names[@]} -gt 0 ] || names=($(cd "$here/corpus" && ls))
    for name in "${names[@]}"; do
      tmp=$(mktemp -d)
      before=$(ls "$here/corpus/$name" | wc -l)
      minimize "$build/fuzz_$name" "$here/corpus/$name" "$tmp" >"$tmp/log" 2>&1 ||
        { echo "fuzz_$name: merge failed (log: $tmp/log)"; continue; }
      echo "fuzz_$name: $before -> $(ls "$here/corpus/$name" | wc -l) files"
      rm -rf "$tmp"
    done
    ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
