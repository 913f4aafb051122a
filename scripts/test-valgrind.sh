#!/bin/sh
# `make test-valgrind`: every unit test, then one daemon integration suite (test_http.py,
# which also covers the 10 MiB body and a graceful stop), under valgrind memcheck. Any
# memory error or definitely lost block fails the run. CLI commands run natively: only
# `postern serve` is put under valgrind (argon2id under valgrind is very slow).
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
logs=build/valgrind-logs
rm -rf "$logs" && mkdir -p "$logs"
vg="valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --error-exitcode=99 --suppressions=$root/tests/valgrind.supp"
status=0
for t in build/test_*; do
	[ -x "$t" ] || continue
	[ "$(basename "$t")" = test_dns ] && continue # needs dnsmasq; covered by ctest
	echo "valgrind: $t"
	$vg --log-file="$logs/$(basename "$t").log" "$t" >/dev/null 2>&1 || {
		echo "valgrind: $t failed" >&2
		cat "$logs/$(basename "$t").log" >&2
		status=1
	}
done
wrapper=build/postern-valgrind
cat >"$wrapper" <<WRAP
#!/bin/sh
if [ "\$1" = serve ]; then
	exec $vg --log-file=$root/$logs/serve.%p.log $root/build/postern "\$@"
fi
exec $root/build/postern "\$@"
WRAP
chmod +x "$wrapper"
echo "valgrind: tests/integration/test_http.py with the daemon under memcheck"
POSTERN_BIN=$root/$wrapper python3 tests/integration/test_http.py || status=1
for log in "$logs"/serve.*.log; do
	[ -s "$log" ] || continue
	echo "valgrind: report in $log" >&2
	cat "$log" >&2
	status=1
done
exit $status
