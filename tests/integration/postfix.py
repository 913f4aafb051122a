"""A private Postfix instance on loopback, as a peer of Postern's SMTP front end (the recipe
of shared/PEERS-postfix.md): its own temporary directory (main.cf, master.cf, queue, maillog),
free ports, started and stopped by the master's PID, with a check that no daemon of it is
left behind. Needs root (Postfix's master) and the postfix package; SASL (relay mode with
credentials and the submission port) needs sasl2-bin and libsasl2-modules.

Modes:
- hold: intake only. Every message is accepted into an fsync'd queue file in queue/hold,
  which qmgr never sees (Postfix's own intake, for the benchmark).
- relay: everything goes to relayhost HOST:PORT. With sasl=(user, password): SASL
  credentials over TLS that is required but not verified (a loopback peer with a
  self-signed certificate), as an application's local Postfix relays through a provider.
  Without: plain SMTP, as a provider's MTA hands mail to the next hop; a 5xx from it is a
  bounce at once, and Postfix sends its DSN to the envelope sender.

Options for any mode:
- submit=True adds a submission port (STARTTLS required, AUTH PLAIN/LOGIN against a sasldb
  with user SASL_USER, password SASL_PASSWORD), so one instance can be another's relayhost.
- transport={domain: "HOST:PORT"} routes mail for those domains there (transport_maps),
  whatever the relayhost: how a DSN reaches a bounce listener on loopback.
- refuse={address: reply} refuses those recipients at RCPT with reply ("550 5.1.1 User
  unknown" when given a list): the next hop that makes a relay bounce.
- hostname: its myhostname. Two instances that talk to each other need different ones, or
  the client takes the other's greeting for its own and calls it a mail loop."""
import os
import shutil
import smtplib
import subprocess
import tempfile

from harness import free_port, listening, wait_until

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTSUPER = "/usr/sbin/postsuper"
SASLPASSWD = "/usr/sbin/saslpasswd2"
SASL_REALM = "bench.test"
SASL_USER = "alice@" + SASL_REALM
SASL_PASSWORD = "secret"
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

# The daemons a private instance runs, all without chroot (the queue has no etc/ copies);
# postlog keeps the maillog going.
SERVICES = [
    "pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr", "tlsmgr unix - - n 1000? 1 tlsmgr",
    "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp", "showq unix n - n - - showq",
    "error unix - - n - - error", "retry unix - - n - - error",
    "discard unix - - n - - discard", "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache", "postlog unix-dgram n - n - 1 postlogd",
]


class PostfixError(Exception):
    pass


def _run(*args, timeout=60):
    r = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=timeout)
    if r.returncode != 0:
        raise PostfixError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def _stat_cpu(pid, children=True):
    """utime+stime (and the reaped children's cutime+cstime) of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15 if children else 13]) / os.sysconf("SC_CLK_TCK")


DEFAULT_REFUSAL = "550 5.1.1 User unknown"
# A relay's failures show at once in the maillog instead of waiting in deferred, and a
# temporary failure (a DSN whose listener is not up yet) is retried within seconds.
QUICK_RETRIES = ("minimal_backoff_time = 5s", "maximal_backoff_time = 10s",
                 "queue_run_delay = 5s")


class Postfix:
    """One private instance; mode "hold" or "relay" (with relayhost "HOST:PORT", and
    sasl=(user, password) or None); submit=True adds the SASL+STARTTLS submission port
    (self.submit_port); transport, refuse and hostname as the module says. self.port is its
    plain smtpd, open to 127.0.0.0/8 (mynetworks)."""

    def __init__(self, mode="hold", relayhost=None, sasl=None, submit=False, tmp=None, *,
                 transport=None, refuse=None, hostname="peer.bench.test"):
        if mode not in ("hold", "relay"):
            raise ValueError(f"mode {mode}: hold or relay")
        if mode == "relay" and not relayhost:
            raise ValueError("relay mode needs relayhost")
        if os.geteuid() != 0:
            raise PostfixError("a private Postfix needs root (its master)")
        self.mode, self.relayhost, self.sasl, self.submit_enabled = mode, relayhost, sasl, submit
        self.transport = dict(transport or {})
        if refuse is not None and not isinstance(refuse, dict):
            refuse = {a: DEFAULT_REFUSAL for a in refuse}
        self.refuse = dict(refuse or {})
        self.hostname = hostname
        self.dir = tmp or tempfile.mkdtemp(prefix="postern-postfix-")
        os.chmod(self.dir, 0o755)  # its daemons run as user postfix
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.maillog_path = os.path.join(self.dir, "maillog")
        self.port = self.submit_port = None
        self.master_pid = None

    # --- configuration ---------------------------------------------------------------

    def _postconf(self, *settings, flag=None):
        _run(POSTCONF, "-c", self.etc, *([flag] if flag else []), *settings)

    def _write_config(self):
        os.makedirs(self.etc, exist_ok=True)
        os.makedirs(self.queue, exist_ok=True)
        # data_directory must be postfix's, or master cannot take its lock.
        _run("install", "-d", "-o", "postfix", "-g", "postfix", "-m", "700",
             os.path.join(self.dir, "data"))
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": os.path.join(self.dir, "data"),
            "maillog_file": self.maillog_path,
            "maillog_file_prefixes": self.dir,  # outside it, the maillog is silently fatal
            "myhostname": self.hostname,
            "mydestination": "", "local_recipient_maps": "", "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.writelines(f"{k} = {v}\n" for k, v in main.items())
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(f"127.0.0.1:{self.port} inet n - n - - smtpd\n")
            f.writelines(s + "\n" for s in SERVICES)
        if self.mode == "hold":
            self._postconf("smtpd_end_of_data_restrictions = check_client_access static:HOLD")
        elif self.sasl:
            self._relay_config()
        else:
            self._plain_relay_config()
        if self.transport:
            self._transport_config()
        if self.refuse:
            self._refuse_config()
        if self.submit_enabled:
            self._submission_config()

    def _relay_config(self):
        host, port = self.relayhost.rsplit(":", 1)
        nexthop = f"[{host}]:{port}"
        user, password = self.sasl
        # A texthash file rather than static:user:password, so that nothing in the password
        # is read by postconf ($ expansion, spaces). Keyed by the next hop as smtp looks it up.
        maps = os.path.join(self.etc, "sasl_passwd")
        with open(maps, "w") as f:
            f.write(f"{nexthop} {user}:{password}\n")
        os.chmod(maps, 0o600)
        self._postconf(
            f"relayhost = {nexthop}",
            "smtp_sasl_auth_enable = yes",
            f"smtp_sasl_password_maps = texthash:{maps}",
            "smtp_sasl_security_options = noanonymous",
            "smtp_sasl_tls_security_options = noanonymous",
            # Required but not verified: the relayhost's certificate is self-signed, on loopback.
            "smtp_tls_security_level = encrypt",
            "smtp_tls_loglevel = 1", *QUICK_RETRIES)

    def _plain_relay_config(self):
        host, port = self.relayhost.rsplit(":", 1)
        self._postconf(f"relayhost = [{host}]:{port}", *QUICK_RETRIES)

    def _transport_config(self):
        # texthash: read as it is, no postmap; [HOST] so that smtp looks up no MX.
        maps = os.path.join(self.etc, "transport")
        with open(maps, "w") as f:
            for domain, hostport in self.transport.items():
                host, port = hostport.rsplit(":", 1)
                f.write(f"{domain} smtp:[{host}]:{port}\n")
        self._postconf(f"transport_maps = texthash:{maps}")

    def _refuse_config(self):
        # An access map's "5NN X.Y.Z text" is the reply itself: Postfix answers
        # "550 5.1.1 <address>: Recipient address rejected: text".
        maps = os.path.join(self.etc, "refuse")
        with open(maps, "w") as f:
            f.writelines(f"{address} {reply}\n" for address, reply in self.refuse.items())
        self._postconf(f"smtpd_recipient_restrictions = check_recipient_access texthash:{maps}")

    def _submission_config(self):
        self.submit_port = free_port()
        sasl_dir = os.path.join(self.etc, "sasl")
        os.makedirs(sasl_dir, exist_ok=True)
        cert, key = os.path.join(self.etc, "cert.pem"), os.path.join(self.etc, "key.pem")
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=peer.bench.test", "-keyout", key, "-out", cert)
        sasldb = os.path.join(self.etc, "sasldb2")
        with open(os.path.join(sasl_dir, "smtpd.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
                    f"sasldb_path: {sasldb}\n")
        subprocess.run([SASLPASSWD, "-p", "-c", "-f", sasldb, "-u", SASL_REALM,
                        SASL_USER.split("@")[0]], input=SASL_PASSWORD + "\n", text=True,
                       check=True, capture_output=True, timeout=30)
        shutil.chown(sasldb, "root", "postfix")  # smtpd reads it as postfix
        os.chmod(sasldb, 0o640)
        # The login may send as itself and as anyone @alice.test (Postfix's own sender check).
        logins = os.path.join(self.etc, "login_maps")
        with open(logins, "w") as f:
            f.write(f"{SASL_USER} {SASL_USER}\n@alice.test {SASL_USER}\n")
        s = f"127.0.0.1:{self.submit_port}/inet"
        self._postconf(f"cyrus_sasl_config_path = {sasl_dir}", f"smtpd_tls_cert_file = {cert}",
                       f"smtpd_tls_key_file = {key}",
                       f"smtpd_sender_login_maps = texthash:{logins}")
        self._postconf(f"{s}=127.0.0.1:{self.submit_port} inet n - n - - smtpd", flag="-M")
        self._postconf(f"{s}/syslog_name=postfix/submission",
                       f"{s}/smtpd_tls_security_level=encrypt",
                       f"{s}/smtpd_sasl_auth_enable=yes",
                       f"{s}/smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                       f"{s}/smtpd_sender_restrictions=reject_sender_login_mismatch",
                       flag="-P")

    # --- lifecycle -------------------------------------------------------------------

    def start(self, timeout=20):
        """Writes the configuration and starts the master on free ports; when another
        process takes a port between the choice and the bind (tests run in parallel), it
        tries others (bounded)."""
        for _ in range(3):
            if self._start(timeout):
                return self
        raise PostfixError("postfix did not start listening after 3 tries:\n" + self.maillog())

    def _start(self, timeout):
        self.port = free_port()
        self._write_config()
        for args in (("check",), ("start",)):
            r = subprocess.run([POSTFIX, "-c", self.etc, *args], capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, timeout=60)
            if r.returncode != 0:
                # Postfix writes to stderr only on a tty: the reason is in the maillog.
                self._stop_leftovers()
                raise PostfixError(f"postfix {args[0]} exited {r.returncode}: "
                                   f"{r.stderr.strip()}\n{self.maillog()}")
        pid_file = os.path.join(self.queue, "pid", "master.pid")
        ports = [p for p in (self.port, self.submit_port) if p]
        if not wait_until(lambda: os.path.exists(pid_file) and all(map(listening, ports)),
                          timeout, interval=0.05):
            subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
            wait_until(lambda: not self._own_pids(), 10, interval=0.1)
            self._stop_leftovers()
            return False
        with open(pid_file) as f:
            self.master_pid = int(f.read().strip())
        return True

    def _own_pids(self):
        """The PIDs of this instance's daemons: they inherit MAIL_CONFIG=<its etc>."""
        marker = f"MAIL_CONFIG={self.etc}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
        return pids

    def _stop_leftovers(self):
        for pid in self._own_pids():
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    def stop(self, timeout=20):
        """postfix stop, then waits for the master to exit (stop returns before it does) and
        for every daemon of this instance to be gone. Returns the PIDs that had to be killed
        (a leftover is a failure of the instance, reported, never silent)."""
        if not self.master_pid:
            return []
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
        pid, self.master_pid = self.master_pid, None
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout, interval=0.05)
        if wait_until(lambda: not self._own_pids(), 5, interval=0.1):
            return []
        left = self._own_pids()
        self._stop_leftovers()
        return left

    def cleanup(self):
        left = self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if left:
            raise PostfixError(f"postfix left processes behind: {left}")

    # --- what a test or benchmark does with it ------------------------------------------

    def submit(self, sender, recipients, message, timeout=30):
        """Plain SMTP into its smtpd from 127.0.0.1 (in mynetworks, so it may relay);
        message is bytes or str. Returns the queue ID Postfix answered with."""
        if isinstance(recipients, str):
            recipients = [recipients]
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as s:
            s.ehlo("client.test")
            s.mail(sender)
            for r in recipients:
                code, msg = s.rcpt(r)
                if code != 250:
                    raise PostfixError(f"RCPT {r}: {code} {msg!r}")
            code, msg = s.data(message)
            if code != 250:
                raise PostfixError(f"DATA: {code} {msg!r}")
        return msg.decode().rsplit(" ", 1)[-1]

    def queued(self):
        """Messages in its queue (every queue directory, hold included)."""
        n = 0
        for q in QUEUES:
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n

    def empty_queue(self):
        _run(POSTSUPER, "-c", self.etc, "-d", "ALL")

    def maillog(self):
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, *needles, timeout=30):
        """The maillog lines holding every needle, waiting (bounded) for at least one."""
        find = lambda: [l for l in self.maillog().splitlines() if all(n in l for n in needles)]
        return wait_until(find, timeout, interval=0.1) or []

    def cpu_seconds(self):
        """CPU of the master (with the daemons it has reaped) plus its live children (with
        theirs), as the recipe counts it: smtpd and cleanup exit after max_use messages."""
        total = _stat_cpu(self.master_pid)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == self.master_pid:
                    total += _stat_cpu(entry)
            except (OSError, ValueError):
                continue
        return total

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
