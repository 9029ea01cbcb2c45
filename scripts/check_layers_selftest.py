#!/usr/bin/env python3
"""Proves that scripts/check_layers.py can fail (ctest `layer_includes_detects_violation`).

    check_layers_selftest.py <check_layers.py> <layer graph file> <src dir>

Builds small trees in a temp dir and runs the real script on them as ctest does: a clean tree
must pass; an upward include (plain, relative, and in a nested folder), an undeclared folder,
and an upward include injected into a copy of the real src/ checked against the real graph must
each fail, naming the file, line and include. Standard library only.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

FAILURES = []


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(script, graph, src):
    proc = subprocess.run([sys.executable, script, graph, src], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def expect(name, result, rc, lines=(), absent=()):
    code, output = result
    ok = code == rc and all(line in output.splitlines() for line in lines) \
        and not any(text in output for text in absent)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {code}")
    if not ok:
        FAILURES.append(name)
        print(f"     expected exit {rc} and lines {list(lines)}, none of {list(absent)}")
        print("     got:\n" + "\n".join("       " + l for l in output.splitlines()))


# A graph as cmake/LayerCheck.cmake writes it: third-party entries, $<LINK_ONLY:...> and the
# ::@(...) directory brackets are noise the script must see through.
SYNTH_GRAPH = "\n".join([
    "# test graph",
    "layer\tcore\tt_core\tThreads::Threads;dl\t$<LINK_ONLY:Threads::Threads>",
    "layer\tengine\tt_engine\tt_core;llama\tt_core;$<LINK_ONLY:llama>",
    "layer\tmetrics\tt_metrics\tt_core\tt_core",
    "layer\truntime\tt_runtime\tt_engine;::@(0x1234);t_metrics;::@\tt_engine",
    "layer\thttp\tt_http\tt_runtime;nlohmann_json::nlohmann_json\tt_runtime",
    "absent\tpipeline\tt_pipeline",
    "",
])


def synth_tree(root, upward):
    src = os.path.join(root, "src")
    write(os.path.join(root, "graph.txt"), SYNTH_GRAPH)
    write(os.path.join(src, "core/error.h"), '#pragma once\n#include <string>\n'
          + ('#include "engine/model.h"\n' if upward else "") + "struct Error {};\n")
    write(os.path.join(src, "core/detail/bits.h"), '#pragma once\n'
          + ('#include "../../metrics/registry.h"\n' if upward else '#include "../error.h"\n'))
    write(os.path.join(src, "engine/model.h"), '#pragma once\n#include "core/error.h"\n'
          '#include "llama.h"\n#include "nlohmann/json.hpp"\n')
    write(os.path.join(src, "engine/model.cpp"), '#include "engine/model.h"\n#include "model.h"\n'
          + ('#include "runtime/registry.h"\n' if upward else ""))
    write(os.path.join(src, "metrics/registry.h"), '#pragma once\n#include "core/error.h"\n'
          + ('#include "engine/model.h"\n' if upward else ""))
    # transitive: http reaches core through runtime -> engine -> core
    write(os.path.join(src, "runtime/registry.h"), '#pragma once\n#include "engine/model.h"\n'
          '#include "metrics/registry.h"\n#include "core/error.h"\n')
    write(os.path.join(src, "http/routes.cpp"), '#include "runtime/registry.h"\n'
          '#include "core/error.h"\n#include "metrics/registry.h"\n'
          + ('#include "pipeline/stage.h"\n' if upward else ""))
    write(os.path.join(src, "CMakeLists.txt"), "# not a source file\n")
    return os.path.join(root, "graph.txt"), src


def load_checker(script):
    spec = importlib.util.spec_from_file_location("check_layers", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def real_tree_case(script, graph, src, tmp):
    """Copy the real src/ and add an include of an upper layer to a file of a lower one."""
    checker = load_checker(script)
    layers, _ = checker.read_graph(graph)
    allowed = checker.closures(layers)
    for lower in sorted(layers, key=lambda f: (len(allowed[f]), f)):
        lower_dir = os.path.join(src, lower)
        files = list(checker.source_files(lower_dir)) if os.path.isdir(lower_dir) else []
        # prefer a layer that depends on this one: a truly upward include
        uppers = sorted((lower not in allowed[f], f) for f in layers
                        if f != lower and f not in allowed[lower])
        if uppers and files:
            upper = uppers[0][1]
            break
    else:
        FAILURES.append("real tree")
        print("FAIL real tree: no pair of layers where one may not include the other")
        return
    copy = os.path.join(tmp, "real", "src")
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    victim = os.path.join(copy, os.path.relpath(files[0], src))
    with open(victim, encoding="utf-8", errors="replace") as f:
        count = len(f.read().splitlines())
    with open(victim, "a", encoding="utf-8") as f:
        f.write(f'\n#include "{upper}/layer_check_probe.h"\n')
    shown = os.path.join("src", os.path.relpath(files[0], src))
    uses = ", ".join(sorted(allowed[lower])) or "(nothing of ours)"
    expect(f"real src/ copy, {shown} includes {upper}/", run(script, graph, copy), 1,
           [f"{shown}:{count + 2} includes {upper}/layer_check_probe.h "
            f"but layer {lower} may only use: {uses}"])


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    script, graph, src = (os.path.abspath(a) for a in argv[1:])
    with tempfile.TemporaryDirectory(prefix="mmserve_layers_") as tmp:
        g, s = synth_tree(os.path.join(tmp, "clean"), upward=False)
        expect("clean tree passes", run(script, g, s), 0,
               ["layer_includes: OK: 5 layers, 7 files, 11 includes checked "
                "(no target in this build, skipped: pipeline)"])

        g, s = synth_tree(os.path.join(tmp, "upward"), upward=True)
        expect("upward includes fail", run(script, g, s), 1, [
            "src/core/error.h:3 includes engine/model.h but layer core may only use: (nothing of ours)",
            "src/core/detail/bits.h:2 includes ../../metrics/registry.h but layer core may only use: (nothing of ours)",
            "src/engine/model.cpp:3 includes runtime/registry.h but layer engine may only use: core",
            "src/metrics/registry.h:3 includes engine/model.h but layer metrics may only use: core",
            "src/http/routes.cpp:4 includes pipeline/stage.h but layer http may only use: core, engine, metrics, runtime",
        ], absent=["layer_includes: OK"])

        g, s = synth_tree(os.path.join(tmp, "undeclared"), upward=False)
        write(os.path.join(s, "newlayer/thing.h"), '#pragma once\n#include "core/error.h"\n')
        expect("undeclared folder fails", run(script, g, s), 1, [
            "src/newlayer/ is not a declared layer: add newlayer=<its CMake target> to "
            "mmserve_check_layers() in cmake/LayerCheck.cmake"])

        real_tree_case(script, graph, src, tmp)

        expect("missing graph file fails", run(script, os.path.join(tmp, "nope.txt"), src), 2)
    if FAILURES:
        print(f"layer_includes_detects_violation: FAILED: {', '.join(FAILURES)}")
        return 1
    print("layer_includes_detects_violation: OK: the check reports upward includes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
