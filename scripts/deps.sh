#!/bin/sh
# Installs the Debian packages Postern builds, runs and tests with, only those missing.
# Usage: scripts/deps.sh run|test|bench|deb   (test installs the run set plus the test peers;
# bench, the run set plus the benchmark peers of `make bench`; deb, the run set plus the
# Debian packaging tools of `make deb`)
# Package scripts must not leave postfix, nginx or dnsmasq running as system services,
# so installs happen behind a policy-rc.d that forbids starting daemons.
set -eu

RUN_PKGS="build-essential cmake pkg-config clang-format
libmicrohttpd-dev libcjson-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev
libsodium-dev libc-ares-dev libopendkim-dev libgmime-3.0-dev libidn2-dev libpsl-dev
libinih-dev zlib1g-dev sqlite3 curl ca-certificates libssl-dev libevent-dev swaks
libsystemd-dev python3 python3-yaml"
TEST_PKGS="libcmocka-dev python3 postfix swaks dnsmasq-base opendkim-tools
postgresql-15 postgresql-client-15 chromium wrk nginx-light clang libclang-rt-14-dev iproute2 libnet-ssleay-perl
sasl2-bin libsasl2-modules
prometheus lintian debhelper dpkg-dev fakeroot man-db groff-base python3-jsonschema gdb"
DEB_PKGS="debhelper dpkg-dev fakeroot lintian"
BENCH_PKGS="postfix wrk nginx-light gnuplot-nox sqlite3 python3 postgresql-15 postgresql-client-15"

set_name="${1:-run}"
want="$RUN_PKGS"
if [ "$set_name" = test ]; then
	want="$RUN_PKGS $TEST_PKGS"
	# The panel's end-to-end test runs on Node.js; any node already on PATH will do.
	command -v node >/dev/null 2>&1 || want="$want nodejs npm"
fi
if [ "$set_name" = bench ]; then
	want="$RUN_PKGS $BENCH_PKGS"
fi
if [ "$set_name" = deb ]; then
	want="$RUN_PKGS $DEB_PKGS"
fi

missing=""
for p in $want; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
if [ -n "$missing" ]; then
	echo "postern: installing missing packages:$missing" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"

	made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	echo 'postfix postfix/main_mailer_type select No configuration' | $sudo debconf-set-selections

	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q >/dev/null || $sudo apt-get update -q
	# shellcheck disable=SC2086
	$sudo apt-get install -y -q --no-install-recommends $missing
	if [ -n "$made_policy" ]; then
		$sudo rm -f /usr/sbin/policy-rc.d
	fi
fi

# The Node tests' npm packages, each directory of tests/ with a package.json, pinned by its
# package-lock.json: the panel's end-to-end test needs playwright-core (no browser download:
# it drives Debian's Chromium), the clients' test the official Netcore and SendGrid clients
# and mailparser, the webhook check the official standardwebhooks and @sendgrid/eventwebhook.
if [ "$set_name" = test ]; then
	tests="$(cd "$(dirname "$0")/.." && pwd)/tests"
	for pkg in "$tests"/*/package.json; do
		dir=$(dirname "$pkg")
		if [ ! -d "$dir/node_modules" ]; then
			echo "postern: installing the npm packages of $dir" >&2
			(cd "$dir" && npm ci --no-audit --no-fund)
		fi
	done
fi
exit 0
