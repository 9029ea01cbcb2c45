"""PEP 517 build backend of the mmserve Python package, written with the standard library only.

pip's build isolation would otherwise download setuptools; with ``requires = []`` and this
in-tree backend, ``pip install ./python`` needs no network at all.

The wheel holds the pure-Python package ``mmserve`` and, unless built remote-only, its
local-mode extension ``mmserve/_native*.so`` plus the engine's shared libraries it loads
(libllama, libggml*, libmtmd, libwhisper, ...) copied beside it. The extension is built by the
project's CMake (target ``mmserve_python``) and installed with RUNPATH ``$ORIGIN``, so the
installed package needs nothing from the build machine.

Options (environment variable, or ``pip install -C key=value``):
  MMSERVE_BUILD_DIR    / build-dir    a CMake build directory of this repository to build and
                                      install the extension from, relative to the repository
                                      root unless absolute (default:
                                      <repo>/build/python-<python tag>, configured on first use
                                      for the Python running pip)
  MMSERVE_CMAKE_ARGS   / cmake-args   extra CMake arguments for that directory (applied to an
                                      existing one too), e.g. "-DMMSERVE_CUDA=ON" for a
                                      CUDA-enabled local mode
  MMSERVE_REMOTE_ONLY  / remote-only  "1": a pure-Python wheel without the extension (remote
                                      mode only; needs neither CMake nor a compiler)

Hooks: get_requires_for_build_wheel, prepare_metadata_for_build_wheel, build_wheel. There is no
sdist: the extension needs the whole repository, so build wheels from a checkout.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

PYTHON_DIR = Path(__file__).resolve().parents[1]  # python/
REPO_ROOT = PYTHON_DIR.parent
PACKAGE = "mmserve"
EXTENSION_TARGET = "mmserve_python"

# Engine libraries bundled beside the extension (anything else comes from the system).
_ENGINE_LIB = re.compile(r"^lib(ggml|llama|mtmd|whisper|parakeet)([-.].*)?\.so(\.[0-9.]+)?$")
_SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")


def _log(message: str) -> None:
    print(f"[mmserve build] {message}", file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    pass


# -- configuration ------------------------------------------------------------------------------

def _option(config_settings: Optional[Dict[str, object]], key: str, env: str) -> Optional[str]:
    if config_settings and key in config_settings:
        value = config_settings[key]
        return " ".join(value) if isinstance(value, list) else str(value)
    return os.environ.get(env) or None


def _project() -> Dict[str, str]:
    """name, version, description, requires-python and readme of pyproject.toml's [project]."""
    text = (PYTHON_DIR / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+
        project = tomllib.loads(text)["project"]
        return {k: str(v) for k, v in project.items() if isinstance(v, str)}
    except ImportError:
        pass
    # Older Pythons: the flat `key = "value"` lines of [project] are all this backend reads.
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        raise BuildError("pyproject.toml has no [project] table")
    return dict(re.findall(r'^([A-Za-z-]+)\s*=\s*"([^"]*)"\s*$', section.group(1), re.M))


def _dist_name(project: Dict[str, str]) -> str:
    return re.sub(r"[-_.]+", "_", project["name"]).lower() + "-" + project["version"]


def _native_tag() -> str:
    if sys.implementation.name != "cpython":
        raise BuildError("the local-mode extension is built for CPython only; set "
                         "MMSERVE_REMOTE_ONLY=1 for a remote-only install")
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = re.sub(r"[^A-Za-z0-9_]", "_", sysconfig.get_platform())
    return f"{py}-{py}-{platform}"


# -- the extension ------------------------------------------------------------------------------

def _run(cmd: List[str]) -> None:
    _log("$ " + " ".join(shlex.quote(c) for c in cmd))
    # The frontend reads this process's stdout; CMake's chatter goes to stderr instead.
    result = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if result.returncode != 0:
        raise BuildError(f"command failed (exit {result.returncode}): {' '.join(cmd)}")


def _build_extension(build_dir: Path, cmake_args: List[str], staging: Path) -> Path:
    """Configures (first time), builds and installs the extension; returns the build-tree file."""
    if not (REPO_ROOT / "CMakeLists.txt").is_file() or not (REPO_ROOT / "src/python").is_dir():
        raise BuildError(f"{REPO_ROOT} is not an mmserve checkout: the local-mode extension is "
                         f"built from the repository (or set MMSERVE_REMOTE_ONLY=1)")
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake is not on PATH (Debian: apt-get install cmake ninja-build); or "
                         "set MMSERVE_REMOTE_ONLY=1 for a remote-only install")
    if not (build_dir / "CMakeCache.txt").is_file():
        configure = [cmake, "-S", str(REPO_ROOT), "-B", str(build_dir),
                     "-DCMAKE_BUILD_TYPE=Release", "-DMMSERVE_BUILD_TESTS=OFF",
                     f"-DPython3_EXECUTABLE={sys.executable}"]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        _run(configure + cmake_args)
    elif cmake_args:  # an existing directory takes new options too (e.g. -DMMSERVE_CUDA=ON)
        _run([cmake, "-S", str(REPO_ROOT), "-B", str(build_dir)] + cmake_args)
    _run([cmake, "--build", str(build_dir), "--target", EXTENSION_TARGET])
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    built = [p for p in sorted((build_dir / "python").glob("_native*.so"))
             if any(p.name == "_native" + s for s in suffixes)]
    if not built:
        found = [p.name for p in (build_dir / "python").glob("_native*")]
        raise BuildError(f"{build_dir} holds no extension for this Python ({sys.executable}, "
                         f"suffixes {suffixes}; found {found or 'none'}): it was configured for "
                         f"another interpreter. Unset MMSERVE_BUILD_DIR to use a build directory "
                         f"of this Python's own")
    _run([cmake, "--install", str(build_dir), "--component", "python", "--prefix", str(staging)])
    return built[0]


def _engine_libraries(extension: Path) -> List[Tuple[str, Path]]:
    """(soname, file) of each engine library the extension loads, and of ggml's loadable backend
    modules (portable builds) that sit beside libggml."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise BuildError("ldd is not on PATH (Debian: libc-bin); it lists the libraries to bundle")
    out = subprocess.run([ldd, str(extension)], capture_output=True, text=True)
    if out.returncode != 0:
        raise BuildError(f"ldd {extension} failed: {out.stderr.strip()}")
    libs: Dict[str, Path] = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(.*?)\s+\(0x[0-9a-f]+\)\s*$", line)
        if not m:
            continue
        soname, target = m.group(1), m.group(2)
        if target == "not found":
            raise BuildError(f"{extension.name} needs {soname}, which the loader cannot find")
        if _ENGINE_LIB.match(soname) and not target.startswith(_SYSTEM_DIRS):
            libs[soname] = Path(target)
    ggml = libs.get("libggml.so.0") or next((p for n, p in libs.items()
                                             if n.startswith("libggml.so")), None)
    if ggml is not None:
        for module in sorted(ggml.parent.glob("libggml-*.so")):
            if module.is_file() and not module.is_symlink() and module.name not in libs:
                libs[module.name] = module
    return sorted(libs.items())


# -- the wheel ----------------------------------------------------------------------------------

def _metadata(project: Dict[str, str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    readme = PYTHON_DIR / project.get("readme", "README.md")
    body = ""
    if readme.is_file():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text(encoding="utf-8")
    return "\n".join(lines) + "\n" + body


def _wheel_file(tag: str, purelib: bool) -> str:
    return (f"Wheel-Version: 1.0\nGenerator: mmserve_build\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n")


def _write_dist_info(directory: Path, project: Dict[str, str], tag: str, purelib: bool) -> str:
    name = _dist_name(project) + ".dist-info"
    info = directory / name
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(_metadata(project), encoding="utf-8")
    (info / "WHEEL").write_text(_wheel_file(tag, purelib), encoding="utf-8")
    (info / "top_level.txt").write_text(PACKAGE + "\n", encoding="utf-8")
    return name


class _WheelWriter:
    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self._records: List[str] = []

    def add(self, arcname: str, data: bytes, executable: bool = False) -> None:
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        mode = 0o755 if executable else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        self._zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self._records.append(f"{arcname},sha256={digest},{len(data)}")

    def close(self, record_name: str) -> None:
        self._records.append(f"{record_name},,")
        self._zip.writestr(zipfile.ZipInfo(record_name, date_time=(1980, 1, 1, 0, 0, 0)),
                           "\n".join(self._records) + "\n")
        self._zip.close()


# -- PEP 517 hooks ------------------------------------------------------------------------------

def _remote_only(config_settings: Optional[Dict[str, object]]) -> bool:
    return (_option(config_settings, "remote-only", "MMSERVE_REMOTE_ONLY") or "0") not in ("0", "")


def _tag(config_settings: Optional[Dict[str, object]]) -> Tuple[str, bool]:
    if _remote_only(config_settings):
        return "py3-none-any", True
    return _native_tag(), False


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, object]] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: Optional[Dict[str, object]] = None) -> str:
    tag, purelib = _tag(config_settings)
    return _write_dist_info(Path(metadata_directory), _project(), tag, purelib)


def build_wheel(wheel_directory: str, config_settings: Optional[Dict[str, object]] = None,
                metadata_directory: Optional[str] = None) -> str:
    project = _project()
    tag, purelib = _tag(config_settings)
    with tempfile.TemporaryDirectory(prefix="mmserve-wheel-") as tmp:
        staging = Path(tmp) / "staging"
        package = staging / PACKAGE
        package.mkdir(parents=True)
        extras: List[Tuple[str, Path]] = []
        if not purelib:
            default_dir = REPO_ROOT / "build" / f"python-{tag.split('-')[0]}"
            # pip runs this hook in python/; a relative directory means one in the repository.
            build_dir = (REPO_ROOT / (_option(config_settings, "build-dir", "MMSERVE_BUILD_DIR")
                                      or default_dir)).resolve()
            cmake_args = shlex.split(_option(config_settings, "cmake-args",
                                             "MMSERVE_CMAKE_ARGS") or "")
            extension = _build_extension(build_dir, cmake_args, staging)
            extras = _engine_libraries(extension)
            _log(f"bundling {', '.join(name for name, _ in extras) or 'no engine libraries'}")

        wheel_name = f"{_dist_name(project)}-{tag}.whl"
        writer = _WheelWriter(Path(wheel_directory) / wheel_name)
        source = PYTHON_DIR / PACKAGE
        for path in sorted(source.rglob("*")):
            if path.is_file() and (path.suffix == ".py" or path.name == "py.typed") \
                    and "__pycache__" not in path.parts:
                writer.add(f"{PACKAGE}/{path.relative_to(source).as_posix()}", path.read_bytes())
        for path in sorted(package.glob("_native*")):  # installed by CMake, RUNPATH $ORIGIN
            writer.add(f"{PACKAGE}/{path.name}", path.read_bytes(), executable=True)
        for soname, path in extras:
            writer.add(f"{PACKAGE}/{soname}", path.read_bytes(), executable=True)
        dist_info = Path(tmp) / "meta"
        info_name = _write_dist_info(dist_info, project, tag, purelib)
        for name in ("METADATA", "WHEEL", "top_level.txt"):
            writer.add(f"{info_name}/{name}", (dist_info / info_name / name).read_bytes())
        writer.close(f"{info_name}/RECORD")
    _log(f"built {wheel_name}")
    return wheel_name
