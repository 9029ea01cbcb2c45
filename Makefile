# Entry points. `make run` and `make test` are the README's two commands.
PRESET ?= default
BUILD  := build/$(PRESET)
MODEL  ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: all deps build run generate bench test test-asan test-tsan check-thread-safety fuzz-build test-fuzz fuzz soak image test-deploy format clean

all: build

deps:
	@scripts/deps.sh >/dev/null

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

run: build
	$(BUILD)/mmserve serve -m $(MODEL) --host $(HOST) --port $(PORT)

generate: build
	$(BUILD)/mmserve generate -m $(MODEL) --temp 0 -n 64 "$(PROMPT)"

# The default suite also replays every fuzz corpus and fuzzes each harness briefly (test-fuzz).
test: build
	ctest --preset $(PRESET) -j2
ifeq ($(PRESET),default)
	@$(MAKE) --no-print-directory test-fuzz
endif

test-asan:
	@$(MAKE) --no-print-directory test PRESET=asan

# ThreadSanitizer slows everything tenfold: it runs the C++ tests (the scheduler's concurrency
# among them), not the end-to-end suites. Nor the few tests that are one thread of engine
# compute: TSan's interceptors check every memcpy the (uninstrumented) engines make, so a whisper
# window or a training epoch takes minutes there, and no code of ours shares anything in them
# (SpeechState.StatesRunConcurrentlyOnOneModel, the concurrent one, stays).
TSAN_ENGINE_ONLY := SpeechState\.(TranscribesAWindow|SampledRuns|TranscribesJfk)|FinetuneTrainerTest\.(LossFalls|AStopBetween)
test-tsan:
	@$(MAKE) --no-print-directory build PRESET=tsan
	ctest --preset tsan -j2 -E '^py_|$(TSAN_ENGINE_ONLY)'

# Clang's thread-safety analysis (src/core/thread_annotations.h): compiles mmserve's own code with
# clang-14 in build/thread-safety; an access to GUARDED_BY state without its mutex, or a call to
# a REQUIRES helper without it, fails the build. A compile check only: nothing runs.
check-thread-safety: deps
	@cmake --preset thread-safety >/dev/null
	@cmake --build --preset thread-safety

# libFuzzer harnesses (tests/fuzz/README.md), clang-14 with ASan+UBSan in build/fuzz. test-fuzz:
# replay every seed, then fuzz each harness briefly. fuzz: each harness FUZZ_SECONDS CPU seconds, one after
# another, merging what adds coverage into tests/fuzz/corpus (FUZZERS="gguf audio" picks some).
FUZZ_SECONDS ?= 600
FUZZ_BRIEF_SECONDS ?= 10
FUZZERS ?=

fuzz-build: deps
	@cmake --preset fuzz -DMMSERVE_FUZZ_BRIEF_SECONDS=$(FUZZ_BRIEF_SECONDS) >/dev/null
	@cmake --build --preset fuzz

test-fuzz: fuzz-build
	ctest --preset fuzz -j2

fuzz: fuzz-build
	tests/fuzz/fuzz.sh campaign build/fuzz $(FUZZ_SECONDS) $(FUZZERS)

# The container image (deploy/docker/), with docker or else podman; reused when built from the
# same sources. `make image VARIANT=cuda` needs a registry with NVIDIA's CUDA images.
VARIANT ?= cpu
image:
	scripts/image.sh $(VARIANT)

# The image run as users run it, and the Helm chart's Pod under podman kube play (tests/deploy).
# Not in `make test` or CI: a cold image build compiles the engines (tens of minutes on 2 cores).
# Debian's interpreter, which deps.sh gives pytest and PyYAML (a pyenv python3 first on PATH has neither).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
test-deploy:
	$(PYTHON) -m pytest -q -s tests/deploy

# Side-by-side benchmarks against llama-server and whisper-server (docs/benchmarks.md).
bench: build
	python3 bench/run.py

# Long mixed load against one server (text, images, speech, disconnects, bad input): crashes,
# 5xx and RSS growth (bench/soak.py; summary in bench/results/soak-latest.json). Not part of
# `make test`. SOAK_ARGS="--minutes 3" for a short run (default 30 minutes, 16 clients).
SOAK_ARGS ?=

soak: build
	python3 bench/soak.py $(SOAK_ARGS)

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')

clean:
	rm -rf build
