# Common commands; CMake does the building. See README.md.
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all build run test test-asan test-valgrind deps deps-test format lint clean

all: build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

deps:
	scripts/deps.sh run

deps-test:
	scripts/deps.sh test

run: deps
	$(MAKE) build
	scripts/run.sh

test: deps-test
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j 2

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer (clang); any report fails.
test-asan: deps-test
	scripts/test-asan.sh

# Unit tests and one daemon integration suite under valgrind memcheck.
test-valgrind: deps-test
	$(MAKE) build
	scripts/test-valgrind.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

lint: build
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem --inline-suppr -I src src

clean:
	rm -rf $(BUILD) build-asan
