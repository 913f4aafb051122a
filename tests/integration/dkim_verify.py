"""DKIM verification the way a receiving server does it: opendkim-testmsg looks the key up in
real DNS. It runs inside a private network, mount and PID namespace (unshare, as root) where
dnsmasq serves the given TXT records on 127.0.0.1:53 and a bind-mounted resolv.conf points
there, so nothing on the host changes and nothing outlives the namespace.

    from dkim_verify import verify
    ok, output = verify(signed_bytes, {"sel._domainkey.acme.test": "v=DKIM1; k=rsa; p=..."})

Run as a script (ctest it_dkim_verify), it checks a message signed by build/test_dkim, and
that tampering with its body or adding a From after signing makes it fail."""
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("POSTERN_BUILD_DIR") or os.path.join(ROOT, "build")
TESTMSG = "/usr/sbin/opendkim-testmsg"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

# Runs as PID 1 of the namespace: when it exits, the kernel ends every process left in it.
# $1 is the temporary directory, $2 this file (for its --probe); dnsmasq's command follows.
SCRIPT = r"""
set -u
tmp=$1
self=$2
shift 2
ip link set lo up || exit 90
echo 'nameserver 127.0.0.1' > "$tmp/resolv.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf || exit 91
"$@" &
dns=$!
trap 'kill $dns 2>/dev/null' EXIT
tries=0
until timeout 2 python3 "$self" --probe "$tmp/records.json" 2>"$tmp/probe.err"; do
	tries=$((tries + 1))
	if [ $tries -ge 50 ] || ! kill -0 $dns 2>/dev/null; then
		echo "dnsmasq did not answer as expected" >&2
		cat "$tmp/probe.err" >&2
		tail -n 20 "$tmp/dnsmasq.log" >&2
		exit 92
	fi
	sleep 0.1
done
timeout 30 %(testmsg)s < "$tmp/message.eml"
rc=$?
kill $dns 2>/dev/null
wait $dns 2>/dev/null
exit $rc
"""


def txt_chunks(value):
    """A TXT value as dnsmasq's comma-separated strings of at most 255 bytes each. On the
    command line dnsmasq keeps double quotes literally (only its config files strip them),
    so the strings go unquoted and a comma cannot be part of one."""
    data = value.encode("ascii")
    if b"," in data or b'"' in data:
        raise ValueError("a TXT value with a comma or a double quote cannot be served")
    return ",".join(data[i:i + 255].decode() for i in range(0, len(data), 255))


def dnsmasq_command(records, tmp):
    cmd = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
           "--port=53", "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
           "--pid-file=" + os.path.join(tmp, "dnsmasq.pid"),
           "--log-facility=" + os.path.join(tmp, "dnsmasq.log"), "--log-queries"]
    # Answer NXDOMAIN, not REFUSED, for other names in the zones.
    zones = sorted({name.split("._domainkey.", 1)[-1] for name in records})
    cmd += ["--local=/%s/" % zone for zone in zones]
    cmd += ["--txt-record=%s,%s" % (name, txt_chunks(value)) for name, value in records.items()]
    return cmd


def verify(message, records, timeout=60):
    """Runs opendkim-testmsg on message (bytes) with records ({name: TXT value}) in DNS.
    Returns (ok, output): ok when opendkim-testmsg exits 0; output holds what it and the
    namespace script said (and dnsmasq's log when the lookup failed)."""
    if os.geteuid() != 0:
        raise RuntimeError("dkim_verify needs root (unshare, bind mount, port 53)")
    tmp = tempfile.mkdtemp(prefix="postern-dkimv-")
    try:
        with open(os.path.join(tmp, "message.eml"), "wb") as f:
            f.write(message)
        with open(os.path.join(tmp, "records.json"), "w") as f:
            json.dump(records, f)
        script = SCRIPT % {"testmsg": shlex.quote(TESTMSG)}
        # --kill-child: should this process kill unshare (timeout), the namespace goes too.
        cmd = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
               "sh", "-c", script, "sh", tmp, os.path.abspath(__file__)]
        cmd += dnsmasq_command(records, tmp)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            # subprocess killed unshare; --kill-child took the namespace down with it.
            out = (e.stdout or b"") + (e.stderr or b"")
            return False, "timed out after %ss\n%s" % (timeout, out.decode(errors="replace"))
        output = (proc.stdout + proc.stderr).decode(errors="replace")
        return proc.returncode == 0, "exit %d\n%s" % (proc.returncode, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _query(name, timeout=0.3):
    """One TXT query to 127.0.0.1:53; the answer's strings joined, or None."""
    qid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 16, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", 53))
        reply = s.recv(4096)
    rid, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", reply[:12])
    if rid != qid or flags & 0xF or ancount == 0:
        return None
    pos = 12 + len(question) + 4
    if reply[pos] & 0xC0 != 0xC0:
        return None  # dnsmasq compresses the answer's name; anything else is unexpected
    rtype, _, _, rdlen = struct.unpack(">HHIH", reply[pos + 2:pos + 12])
    if rtype != 16:
        return None
    rdata, parts = reply[pos + 12:pos + 12 + rdlen], []
    while rdata:
        parts.append(rdata[1:1 + rdata[0]])
        rdata = rdata[1 + rdata[0]:]
    return b"".join(parts).decode()


def _probe(records_path):
    """Inside the namespace: exit 0 once dnsmasq serves every record exactly."""
    with open(records_path) as f:
        records = json.load(f)
    for name, value in records.items():
        try:
            got = _query(name)
        except OSError:
            return 1
        if got != value:
            print("%s: served %r" % (name, got), file=sys.stderr)
            return 1
    return 0


def _self_test():
    build = subprocess.run(["cmake", "--build", BUILD, "--target", "test_dkim"],
                           capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        print(build.stdout + build.stderr)
        return 1
    sample = tempfile.mkdtemp(prefix="postern-dkim-sample-")
    try:
        env = dict(os.environ, POSTERN_DKIM_SAMPLE_DIR=sample)
        unit = subprocess.run([os.path.join(BUILD, "test_dkim")], env=env, capture_output=True,
                              text=True, timeout=60)
        if unit.returncode != 0:
            print(unit.stdout + unit.stderr)
            return 1
        with open(os.path.join(sample, "signed.eml"), "rb") as f:
            signed = f.read()
        with open(os.path.join(sample, "record.txt")) as f:
            selector, domain, value = f.read().rstrip("\n").split(" ", 2)
    finally:
        shutil.rmtree(sample, ignore_errors=True)
    records = {"%s._domainkey.%s" % (selector, domain): value}

    failures = 0
    ok, out = verify(signed, records)
    print("signed message: %s (%s)" % ("verified" if ok else "NOT verified", out.strip()))
    failures += not ok

    tampered = signed.replace(b"left our warehouse", b"left our wareh0use")
    assert tampered != signed, "the sample's body changed; update the tampering"
    ok, out = verify(tampered, records)
    print("tampered body: %s (%s)" % ("verified, WRONG" if ok else "rejected", out.strip()))
    failures += ok

    # From is oversigned: a second one put on top after signing (the one a client may show)
    # breaks the signature instead of riding on it.
    forged = b"From: Bank Security <ceo@bank.test>\r\n" + signed
    ok, out = verify(forged, records)
    print("From added after signing: %s (%s)" % ("verified, WRONG" if ok else "rejected",
                                                 out.strip()))
    failures += ok
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        sys.exit(_probe(sys.argv[2]))
    sys.exit(_self_test())
