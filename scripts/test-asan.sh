#!/bin/sh
# `make test-asan`: the whole suite built with clang's AddressSanitizer and
# UndefinedBehaviorSanitizer. Reports from any process (unit tests, the daemon the
# integration tests start) go to files; any report fails the run. it_package builds and
# tests the Debian package, which never contains this build's binary: it runs in make test.
set -eu
cd "$(dirname "$0")/.."
build=build-asan
logs=$build/sanitizer-logs
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPOSTERN_TESTS=ON -DPOSTERN_TEST_CLOCK=ON \
	-DCMAKE_C_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j "$(nproc)"
rm -rf "$logs" && mkdir -p "$logs"
status=0
(cd "$build" && ASAN_OPTIONS="detect_leaks=1:log_path=$PWD/sanitizer-logs/asan" \
	LSAN_OPTIONS="suppressions=$PWD/../tests/lsan.supp:print_suppressions=0" \
	UBSAN_OPTIONS="print_stacktrace=1:log_path=$PWD/sanitizer-logs/ubsan" \
	ctest --output-on-failure -j 2 -E 'it_make_run|it_build_modes|it_package') || status=1
if [ -n "$(ls -A "$logs")" ]; then
	echo "postern: sanitizer reports:" >&2
	cat "$logs"/* >&2
	status=1
fi
exit $status
