#!/usr/bin/env python3
"""A lower layer of src/ cannot include an upper one.

    check_layers.py <layer graph file> <src dir>

The graph file is written by cmake/LayerCheck.cmake at generate time: for each folder of src/,
its CMake target and that target's direct link dependencies (or that the target does not exist
in this build). A layer F may include its own headers and those of every layer whose target F's
target links, directly or transitively; third-party targets are ignored. Every .h/.cpp under
src/<F>/ is scanned for #include "X/..." where X is one of our folders.

Exit status: 0 when clean (one summary line), 1 on violations or an undeclared folder (one line
each), 2 when the graph file or the src dir cannot be read. Standard library only.
"""

import os
import re
import sys

SOURCE_EXTENSIONS = (".h", ".hh", ".hpp", ".inl", ".ipp", ".c", ".cc", ".cpp", ".cxx")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
LINK_ONLY_RE = re.compile(r"^\$<LINK_ONLY:(.*)>$")


class GraphError(Exception):
    pass


def _link_entries(field):
    """Target names from one evaluated LINK_LIBRARIES / INTERFACE_LINK_LIBRARIES field."""
    names = []
    for entry in field.split(";"):
        entry = entry.strip()
        while True:  # INTERFACE_LINK_LIBRARIES keeps a static library's private links wrapped
            match = LINK_ONLY_RE.match(entry)
            if not match:
                break
            entry = match.group(1).strip()
        # ::@(directory-id) ... ::@ brackets the links made from another directory
        if entry and not entry.startswith("::@"):
            names.append(entry)
    return names


def read_graph(path):
    """Returns (layers, absent): layers maps folder -> (target, [direct deps]); absent maps
    folder -> target for the declared folders whose target does not exist in this build."""
    layers, absent, targets = {}, {}, {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise GraphError(f"cannot read the layer graph {path}: {e.strerror} "
                         "(re-run cmake: cmake/LayerCheck.cmake writes it)")
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        kind = fields[0]
        if kind == "layer" and len(fields) >= 3:
            folder, target = fields[1], fields[2]
            deps = []
            for field in fields[3:]:
                deps.extend(_link_entries(field))
        elif kind == "absent" and len(fields) == 3:
            folder, target, deps = fields[1], fields[2], None
        else:
            raise GraphError(f"{path}:{number}: malformed line: {line!r}")
        if folder in layers or folder in absent:
            raise GraphError(f"{path}:{number}: folder {folder} declared twice")
        if target in targets:
            raise GraphError(f"{path}:{number}: target {target} declared for both "
                             f"{targets[target]} and {folder}")
        targets[target] = folder
        if deps is None:
            absent[folder] = target
        else:
            layers[folder] = (target, deps)
    return layers, absent


def closures(layers):
    """folder -> set of the other folders its target reaches through our targets."""
    folder_of = {target: folder for folder, (target, _) in layers.items()}
    direct = {folder: {folder_of[d] for d in deps if d in folder_of and folder_of[d] != folder}
              for folder, (_, deps) in layers.items()}
    result = {}
    for folder in layers:
        seen, stack = set(), list(direct[folder])
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(direct[current])
        seen.discard(folder)
        result[folder] = seen
    return result


def included_folder(include, file_dir, src_dir, declared):
    """The folder of src/ that a quoted include lands in, or None (third-party or outside src/).
    Like the compiler: relative to the including file first, then from src/."""
    candidates = []
    local = os.path.normpath(os.path.join(file_dir, include))
    if os.path.exists(local):
        candidates.append(local)
    candidates.append(os.path.normpath(os.path.join(src_dir, include)))
    for path in candidates:
        rel = os.path.relpath(path, src_dir)
        if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            continue
        first = rel.split(os.sep, 1)[0]
        if os.sep in rel and first in declared:
            return first
        return None
    return None


def source_files(folder_dir):
    for root, dirs, files in os.walk(folder_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.endswith(SOURCE_EXTENSIONS):
                yield os.path.join(root, name)


def check(graph_path, src_dir):
    """Returns (problems, summary)."""
    layers, absent = read_graph(graph_path)
    src_dir = os.path.abspath(src_dir)
    if not os.path.isdir(src_dir):
        raise GraphError(f"{src_dir} is not a directory")
    shown_root = os.path.dirname(src_dir)
    declared = set(layers) | set(absent)
    problems = []

    for name in sorted(os.listdir(src_dir)):
        path = os.path.join(src_dir, name)
        if os.path.isdir(path):
            if name.startswith(".") or name == "__pycache__":
                continue
            if name not in declared:
                problems.append(
                    f"src/{name}/ is not a declared layer: add {name}=<its CMake target> to "
                    "mmserve_check_layers() in cmake/LayerCheck.cmake")
        elif name.endswith(SOURCE_EXTENSIONS):
            problems.append(f"src/{name} is in no layer: move it into a folder of src/")
    for folder, (target, _) in sorted(layers.items()):
        if not os.path.isdir(os.path.join(src_dir, folder)):
            problems.append(f"layer {folder} (target {target}) has no folder src/{folder}/")

    allowed = closures(layers)
    files = includes = 0
    for folder in sorted(layers):
        folder_dir = os.path.join(src_dir, folder)
        if not os.path.isdir(folder_dir):
            continue
        uses = ", ".join(sorted(allowed[folder])) or "(nothing of ours)"
        for path in source_files(folder_dir):
            files += 1
            with open(path, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    match = INCLUDE_RE.match(line)
                    if not match:
                        continue
                    include = match.group(1)
                    other = included_folder(include, os.path.dirname(path), src_dir, declared)
                    if other is None:
                        continue
                    includes += 1
                    if other != folder and other not in allowed[folder]:
                        shown = os.path.relpath(path, shown_root)
                        problems.append(f"{shown}:{number} includes {include} but layer "
                                        f"{folder} may only use: {uses}")

    summary = f"layer_includes: OK: {len(layers)} layers, {files} files, {includes} includes checked"
    if absent:
        summary += f" (no target in this build, skipped: {', '.join(sorted(absent))})"
    return problems, summary


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        problems, summary = check(argv[1], argv[2])
    except GraphError as e:
        print(f"check_layers: {e}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(problem)
        print(f"layer_includes: FAILED: {len(problems)} problem(s); the allowed graph is what "
              "the CMake targets link (src/CMakeLists.txt)")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
