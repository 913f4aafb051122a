# Common commands; CMake does the building. See README.md.
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all build release-build test-build run test test-asan test-valgrind deps deps-test format lint clean fuzz-build fuzz-smoke fuzz install deb

CONFIGURE = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

all: build

# Both configure every time, so the README's commands work in either order in one tree:
# `make build` and `make run` get a release binary (no test clock), `make test` a test build
# in which every test dependency is required (a missing one stops the configure, naming
# it). To run single suites by hand, build with `make test-build`.
build:
	$(CONFIGURE) -DPOSTERN_TEST_CLOCK=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

release-build: deps
	$(MAKE) build

test-build: deps-test
	$(CONFIGURE) -DPOSTERN_TESTS=ON -DPOSTERN_TEST_CLOCK=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# A release build configured for PREFIX (the unit and the panel's path depend on it), copied
# under $(DESTDIR)$(PREFIX): sbin/postern, share/postern/web, the man pages, the example
# configuration in share/doc/postern, and lib/systemd/system/postern.service.
PREFIX ?= /usr/local
install: deps
	$(CONFIGURE) -DPOSTERN_TEST_CLOCK=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

# The Debian package (debian/): dpkg-buildpackage -us -uc -b on a copy of the tree, the
# results in build-deb/ (postern_VERSION_ARCH.deb), then lintian, failing on an error.
deb:
	scripts/deps.sh deb
	JOBS=$(JOBS) scripts/deb.sh build-deb
	lintian --fail-on error build-deb/postern_*.changes

deps:
	scripts/deps.sh run

deps-test:
	scripts/deps.sh test

run: release-build
	scripts/run.sh

# The whole suite, then each fuzz target for 30 s from its seeds.
test: test-build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) fuzz-smoke

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer (clang); any report fails.
test-asan: deps-test
	scripts/test-asan.sh

# Unit tests and one daemon integration suite under valgrind memcheck.
test-valgrind: test-build
	scripts/test-valgrind.sh

# libFuzzer targets (clang, ASan, UBSan) in their own tree; see fuzz/README.md.
FUZZ_TARGETS := addr send config compose tokens smtp dsn
FUZZ_SECONDS ?= 300

fuzz-build:
	CC=clang cmake -S . -B build-fuzz -DPOSTERN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_FLAGS=-O1 >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))

# Each target for 30 s from its seeds; any crash fails.
fuzz-smoke: fuzz-build
	scripts/fuzz.sh 30 $(FUZZ_TARGETS)

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h fuzz/*.c fuzz/*.h

lint: build
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem --inline-suppr -I src src

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# The benchmark suite (bench/run.py, not part of `make test`): writes bench/results.md and
# bench/*.png and prints the table. FIGURES=1,3 runs some figures only; BENCH_ARGS=--quick
# is a short smoke check.
.PHONY: bench
bench:
	scripts/deps.sh bench
	$(CONFIGURE) -DPOSTERN_TEST_CLOCK=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cmake --build $(BUILD) -j $(JOBS) --target bench_policy
	python3 bench/run.py --build $(BUILD) $(if $(FIGURES),--figures $(FIGURES)) $(BENCH_ARGS)
