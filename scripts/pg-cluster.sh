#!/bin/sh
# A throwaway PostgreSQL 15 cluster on loopback, for the integration tests (ctest label
# postgres) and for trying the PostgreSQL backend by hand.
#
#   scripts/pg-cluster.sh start DIR [PORT]   initdb DIR/data and start it on 127.0.0.1:PORT
#                                            (PORT omitted or "auto": a free port, chosen
#                                            now); prints the conninfo and writes it to
#                                            DIR/conninfo
#   scripts/pg-cluster.sh stop DIR           stop it (pg_ctl stop -m fast, else SIGKILL to
#                                            the postmaster) and remove DIR/data
#
# Trust authentication, user postgres, the socket in DIR, nothing listening beyond
# 127.0.0.1. As root the server runs as user postgres (runuser); otherwise as the caller.
# When user postgres cannot reach DIR (a checkout inside a private mktemp -d, say), the
# cluster lives in a directory of its own under /tmp, named in DIR/home. Every wait is
# bounded. The server log stays in DIR/log after stop.
set -eu

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"

usage() {
	echo "usage: $0 start DIR [PORT|auto] | stop DIR" >&2
	exit 2
}

die() {
	echo "pg-cluster: $*" >&2
	exit 1
}

# Runs a PostgreSQL binary as the cluster's owner.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# True when PID is a live process (a zombie whose parent has not reaped it yet is not).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
	[ "$state" != Z ]
}

# The postmaster's PID from DIR/data/postmaster.pid when that process is alive.
postmaster_pid() {
	pidfile="$1/data/postmaster.pid"
	[ -f "$pidfile" ] || return 1
	pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	alive "$pid" || return 1
	echo "$pid"
}

# Where the cluster of DIR lives: DIR, or the directory DIR/home names.
home_of() {
	if [ -f "$1/home" ]; then cat "$1/home"; else echo "$1"; fi
}

stop_cluster() {
	owner_dir="$1"
	home=$(home_of "$owner_dir")
	stop_in "$home"
	if [ "$home" != "$owner_dir" ]; then
		cp "$home/log" "$owner_dir/log" 2>/dev/null || true
		rm -rf "$home" "$owner_dir/home"
	fi
	rm -f "$owner_dir/conninfo"
}

stop_in() {
	dir="$1"
	if [ -f "$dir/data/PG_VERSION" ]; then
		if ! (cd / && timeout 40 $(as_owner_cmd) "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w \
			-t 30 stop >/dev/null 2>&1); then
			if pid=$(postmaster_pid "$dir"); then
				echo "pg-cluster: pg_ctl stop failed; killing postmaster $pid" >&2
				kill -9 "$pid" 2>/dev/null || true
				i=0
				while alive "$pid" && [ $i -lt 100 ]; do
					sleep 0.1
					i=$((i + 1))
				done
				if alive "$pid"; then
					die "postmaster $pid does not die"
				fi
			fi
		fi
	fi
	rm -rf "$dir/data" "$dir/conninfo"
}

# The command prefix that runs as the owner, for use inside timeout.
as_owner_cmd() {
	if [ "$(id -u)" = 0 ]; then
		echo "runuser -u postgres --"
	fi
}

start_cluster() {
	# sh has no local variables: the helpers below set dir and home, so this one keeps
	# its own names.
	top="$1"
	[ -x "$PGBIN/initdb" ] || die "no PostgreSQL 15 in $PGBIN (scripts/deps.sh test)"
	case "$top" in /*) ;; *) top="$(pwd)/$top" ;; esac
	# A cluster left running by an earlier run goes first.
	[ -d "$top" ] && stop_cluster "$top"
	if [ "$(id -u)" = 0 ]; then
		install -d -o postgres -g postgres -m 700 "$top"
	else
		install -d -m 700 "$top"
	fi
	where="$top"
	if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$top"; then
		where=$(mktemp -d /tmp/postern-pg.XXXXXX)
		chown postgres:postgres "$where"
		echo "$where" >"$top/home"
	fi
	start_in "$where" "${2:-auto}"
	if [ "$where" != "$top" ]; then
		cp "$where/conninfo" "$top/conninfo.tmp"
		mv "$top/conninfo.tmp" "$top/conninfo"
	fi
}

start_in() {
	dir="$1"
	want="$2"
	# The socket path (DIR/.s.PGSQL.PORT) must fit in sun_path.
	[ ${#dir} -le 90 ] || die "$dir: path too long for the socket directory"
	(cd / && timeout 120 $(as_owner_cmd) "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres \
		--no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1) ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	touch "$dir/log"
	if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir/log"; fi
	tries=0
	while :; do
		tries=$((tries + 1))
		if [ "$want" = auto ] || [ "$want" = 0 ]; then port=$(free_port); else port="$want"; fi
		before=$(wc -l <"$dir/log")
		if (cd / && timeout 60 $(as_owner_cmd) "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" \
			-w -t 30 -o "-p $port -k $dir -c listen_addresses=127.0.0.1 \
			-c max_connections=300 -c fsync=on" start >/dev/null 2>&1); then
			break
		fi
		tail -n +"$((before + 1))" "$dir/log" >"$dir/log.attempt"
		# Another process may have taken an automatically chosen port: try another.
		if { [ "$want" != auto ] && [ "$want" != 0 ]; } || [ $tries -ge 3 ] ||
			! grep -q "could not bind\|could not create any TCP/IP sockets" \
				"$dir/log.attempt"; then
			tail -n 20 "$dir/log.attempt" >&2
			stop_in "$dir"
			die "the server did not start on 127.0.0.1:$port (log: $dir/log)"
		fi
	done
	rm -f "$dir/log.attempt"
	conninfo="host=127.0.0.1 port=$port user=postgres dbname=postgres"
	# Ready means it answers a query (bounded).
	i=0
	until timeout 5 psql -X -q -At -d "$conninfo" -c 'SELECT 1' >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 50 ]; then
			stop_in "$dir"
			die "the server on 127.0.0.1:$port does not answer"
		fi
		sleep 0.1
	done
	printf '%s\n' "$conninfo" >"$dir/conninfo.tmp"
	mv "$dir/conninfo.tmp" "$dir/conninfo"
	echo "$conninfo"
}

[ $# -ge 2 ] || usage
case "$1" in
start)
	[ $# -le 3 ] || usage
	start_cluster "$2" "${3:-auto}"
	;;
stop)
	[ $# -eq 2 ] || usage
	case "$2" in /*) d="$2" ;; *) d="$(pwd)/$2" ;; esac
	stop_cluster "$d"
	;;
*) usage ;;
esac
