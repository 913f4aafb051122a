#!/bin/sh
# `make run`: the gateway on the embedded defaults. The first run creates ./var/ with a
# SQLite database, a demo account, its Admin and an API key, and prints the credentials
# once; later runs reuse them. Mail goes to ./var/outbox, one .eml file per message. SMTP
# submission listens on 127.0.0.1:2525, taking AUTH without TLS (loopback only).
set -eu
cd "$(dirname "$0")/.."

bin=build/postern
var=var
db=$var/postern.db
ini=$var/postern.ini
account=demo
admin=admin@example.com

mkdir -p "$var/outbox"
if [ ! -f "$ini" ]; then
	cat >"$ini" <<INI
; Written by make run; see docs/postern.ini.example for every key.
[server]
listen = 127.0.0.1:8025
public_url = http://127.0.0.1:8025

[store]
path = $db

[relay]
url = outbox:$var/outbox

[mail]
system_from = postern@localhost.localdomain
INI
fi
# An ini written before SMTP submission existed gets its section too.
if ! grep -q '^\[smtp\]' "$ini"; then
	cat >>"$ini" <<INI

[smtp]
listen = 127.0.0.1:2525
; Loopback only: a real deployment offers STARTTLS (tls_cert, tls_key) and keeps this no.
auth_without_tls = yes
INI
fi
# Likewise webhooks, whose receivers during a first try are on this machine.
if ! grep -q '^\[webhooks\]' "$ini"; then
	cat >>"$ini" <<INI

[webhooks]
; Lets endpoints on loopback and private networks receive events; keep it no in production.
allow_private = yes
INI
fi

if [ ! -f "$db" ]; then
	password=$(head -c 15 /dev/urandom | base64 | tr '+/' '-_')
	POSTERN_PASSWORD=$password $bin init --db "$db" --account "$account" --admin "$admin" >/dev/null
	key=$($bin key create --db "$db" --account "$account" --name demo 2>/dev/null)
	# A domain marked verified by the operator, so the demo can send at once; real
	# domains are verified through DNS (see the README).
	$bin domain add --db "$db" --account "$account" example.com --verified >/dev/null
	cat <<MSG

  Postern demo account created (shown once; keep it):
    panel and API   http://127.0.0.1:8025
    account         $account
    Admin login     $admin
    password        $password
    API key         $key

  Try a send (it lands in $var/outbox/):
    curl -s -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' \\
      -d '{"from":{"email":"news@example.com"},"subject":"Hello",
           "content":[{"type":"text/plain","value":"Hi"}],
           "personalizations":[{"to":[{"email":"you@example.org"}]}]}' \\
      http://127.0.0.1:8025/v5/mail/send

  Or over SMTP (user apikey, password the API key):
    swaks --server 127.0.0.1:2525 --auth PLAIN --auth-user apikey \\
      --auth-password '$key' --from news@example.com --to you@example.org

MSG
else
	echo "postern: HTTP on http://127.0.0.1:8025, SMTP on 127.0.0.1:2525 (AUTH user apikey," \
		"password an API key of the demo account)"
fi

exec $bin serve --config "$ini"
