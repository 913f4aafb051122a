"""`postern serve` under a service manager, with real libsystemd: a unix datagram socket
stands in for systemd (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID, as systemd sets them for
Type=notify with WatchdogSec=). READY=1 comes only once the HTTP port answers, WATCHDOG=1
pings follow at half the interval, SIGHUP gives RELOADING=1 then READY=1 and applies the
configuration file's [log] level and format (a file that no longer parses keeps the old
ones, with a warning naming the error), SIGTERM gives STOPPING=1; with the watchdog meant for another
PID, no pings."""
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import Gateway, free_port, main, write_config


class Manager:
    """The service manager's end of NOTIFY_SOCKET: every datagram as a dict of its
    KEY=VALUE lines, in the order they came."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.seen = []

    def _next(self, deadline):
        """The next message before deadline (monotonic), or None."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.seen.append(msg)
        return msg

    def wait_for(self, key, value, timeout=15):
        """The messages that arrive until one has key=value (included), bounded in time;
        fails when none does."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (msg := self._next(deadline)) is not None:
            got.append(msg)
            if msg.get(key) == value:
                return got
        raise AssertionError(f"no {key}={value} from the daemon within {timeout}s; got {got}")

    def drain(self, seconds):
        """Every message of the next seconds."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (msg := self._next(deadline)) is not None:
            got.append(msg)
        return got

    def close(self):
        self.sock.close()


class Daemon:
    """A gateway started as systemd would start it, with its own ini (the [log] level under
    test) and the manager's socket; watchdog_pid "self" sets WATCHDOG_PID to the daemon's
    own PID (through sh's exec, which keeps it)."""

    def __init__(self, watchdog_usec=400000, watchdog_pid="self"):
        self.gw = Gateway().init()
        self.ini = os.path.join(self.gw.tmp, "serve.ini")
        self.set_level("info")
        self.manager = Manager(os.path.join(self.gw.tmp, "notify.sock"))
        self.gw.port = free_port()
        argv = self.gw.serve_command("--config", self.ini, "--listen",
                                     f"127.0.0.1:{self.gw.port}", "--relay", self.gw.relay,
                                     "--dns", f"127.0.0.1:{self.gw.dns_port}")
        env = dict(os.environ, NOTIFY_SOCKET=self.manager.path,
                   WATCHDOG_USEC=str(watchdog_usec))
        env.pop("WATCHDOG_PID", None)
        pid = "$$" if watchdog_pid == "self" else str(watchdog_pid)
        self.log = open(self.gw.log_path, "ab")
        self.proc = subprocess.Popen(["sh", "-c", f'WATCHDOG_PID={pid} exec "$@"', "sh", *argv],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)

    def set_level(self, level, format="text"):
        write_config(self.ini, {"log": {"level": level, "format": format}})

    def answers(self):
        """True when the HTTP port answers a request now."""
        try:
            return self.gw.client().request("GET", "/").status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        self.manager.close()
        self.gw.cleanup()


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.d.stop)

    def request_logged(self, path):
        """Makes a request for path; True when its log line is written (a line is written
        within 50 ms: half a second is plenty)."""
        self.d.gw.client().request("GET", path)
        time.sleep(0.5)
        return path in self.d.gw.read_log()

    def reload(self):
        self.d.proc.send_signal(signal.SIGHUP)
        got = self.d.manager.wait_for("READY", "1", timeout=10)
        states = [m for m in got if "WATCHDOG" not in m]
        self.assertEqual([m.get("RELOADING") for m in states[:1]], ["1"], got)
        self.assertEqual(states[-1].get("READY"), "1")

    def test_ready_watchdog_reload_stopping(self):
        got = self.d.manager.wait_for("READY", "1")
        # By READY=1 the listener is bound: the very next request is answered.
        self.assertTrue(self.d.answers(), self.d.gw.read_log())
        self.assertTrue(self.d.gw.log_lines("postern serving on"))
        self.assertEqual([m for m in got if m.get("WATCHDOG")], [],
                         "no ping before the daemon is ready")

        # WATCHDOG_USEC 400 ms: a ping every 200 ms, so at least 5 in 1.5 s.
        pings = [m for m in self.d.manager.drain(1.5) if m.get("WATCHDOG") == "1"]
        self.assertGreaterEqual(len(pings), 5, pings)
        self.assertLessEqual(len(pings), 10, pings)

        self.assertTrue(self.request_logged("/before-reload"))
        self.d.set_level("warn")
        self.reload()
        self.assertFalse(self.request_logged("/at-warn"), "info lines hidden at level warn")

        # A file that no longer parses: the level stays warn, one warning says why.
        with open(self.d.ini, "w") as f:
            f.write("[log]\nlevel = loud\n")
        self.reload()
        self.assertFalse(self.request_logged("/still-warn"))
        log = self.d.gw.read_log()
        self.assertIn("log level and format not reloaded", log)
        self.assertIn("malformed value 'loud'", log)

        self.d.set_level("debug")
        self.reload()
        self.assertTrue(self.request_logged("/at-debug"), "info lines shown again at debug")
        self.assertTrue(self.d.answers())

        # The format is re-read too: from here on each line is one JSON object.
        self.d.set_level("info", "json")
        self.reload()
        self.assertTrue(self.request_logged("/as-json"))
        line = [l for l in self.d.gw.read_log().splitlines() if "/as-json" in l][-1]
        self.assertEqual(json.loads(line)["level"], "info", line)

        self.d.proc.send_signal(signal.SIGTERM)
        self.d.manager.wait_for("STOPPING", "1", timeout=10)
        self.assertEqual(self.d.proc.wait(15), 0)


class OtherPidTest(unittest.TestCase):
    def test_watchdog_for_another_pid_sends_no_pings(self):
        # systemd names the PID the watchdog is meant for; a child that inherited the
        # variables (not the main process) must not ping in its place.
        d = Daemon(watchdog_pid=1)
        self.addCleanup(d.stop)
        d.manager.wait_for("READY", "1")
        got = d.manager.drain(1.0)
        self.assertEqual([m for m in got if m.get("WATCHDOG")], [], got)
        self.assertTrue(d.answers())


if __name__ == "__main__":
    main()
