#!/bin/sh
# `make fuzz-smoke` and `make fuzz`: runs each libFuzzer target of build-fuzz for SECONDS,
# FUZZ_JOBS at a time, on a copy of its seeds in build-fuzz/corpus (the repository's seeds
# never grow) and with fuzz/dict/TARGET.dict if there is one. Crash inputs land in
# build-fuzz/artifacts; any crash, leak or timeout fails.
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (targets: addr send config compose tokens)
set -eu
cd "$(dirname "$0")/.."
build=build-fuzz
seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
targets="${*:-addr send config compose tokens}"
jobs="${FUZZ_JOBS:-$(nproc)}"

mkdir -p "$build/artifacts" "$build/logs"
run_one() {
	t=$1
	mkdir -p "$build/corpus/$t"
	cp fuzz/corpus/"$t"/* "$build/corpus/$t/"
	dict=""
	[ ! -f "fuzz/dict/$t.dict" ] || dict="-dict=fuzz/dict/$t.dict"
	# shellcheck disable=SC2086
	if "$build/fuzz_$t" -max_total_time="$seconds" -seed=1 -print_final_stats=1 $dict \
		-artifact_prefix="$build/artifacts/$t-" "$build/corpus/$t" \
		>"$build/logs/$t.log" 2>&1; then
		echo "fuzz_$t: ok, $(grep -m1 '^stat::number_of_executed_units' "$build/logs/$t.log" |
			sed 's/.*: *//') runs in ${seconds}s"
	else
		echo "fuzz_$t: FAILED, see $build/logs/$t.log and $build/artifacts/" >&2
		grep -m3 -E 'ERROR|fuzz check failed|runtime error|SUMMARY' "$build/logs/$t.log" >&2 || true
		return 1
	fi
}

status=0
running=0
pids=""
for t in $targets; do
	run_one "$t" &
	pids="$pids $!"
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		for p in $pids; do wait "$p" || status=1; done
		pids=""
		running=0
	fi
done
for p in $pids; do wait "$p" || status=1; done
exit $status
