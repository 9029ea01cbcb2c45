# Entry points. `make run` and `make test` are the README's two commands.
PRESET ?= default
BUILD  := build/$(PRESET)
MODEL  ?= ../shared/models/stories260K.gguf
PROMPT ?= Once upon a time
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: all deps build run generate bench test test-asan test-tsan format clean

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

test: build
	ctest --preset $(PRESET) -j2

test-asan:
	@$(MAKE) --no-print-directory test PRESET=asan

# ThreadSanitizer slows everything tenfold: it runs the C++ tests (the scheduler's concurrency
# among them), not the end-to-end suites.
test-tsan:
	@$(MAKE) --no-print-directory build PRESET=tsan
	ctest --preset tsan -j2 -E '^py_'

# Side-by-side benchmarks against llama-server and whisper-server (docs/benchmarks.md).
bench: build
	python3 bench/run.py

format:
	clang-format -i $$(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')

clean:
	rm -rf build
