"""`make install` (cmake --install with DESTDIR) of the tree under test, and the systemd unit
it installs: every file where an operator and the package expect it, the installed binary
serving the installed panel without configuration, and postern.service passing
`systemd-analyze verify` and rated at most 2.0 ("OK") by `systemd-analyze security`."""
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import ROOT, Gateway, main

BUILD = os.path.dirname(os.path.abspath(harness.BIN))


def cache_value(name):
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        return re.search(rf"^{name}:\w+=(.*)$", f.read(), re.M).group(1)


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.destdir = tempfile.mkdtemp(prefix="postern-install-")
        cls.prefix = cache_value("CMAKE_INSTALL_PREFIX")
        cls.root = cls.destdir + cls.prefix
        r = subprocess.run(["cmake", "--install", BUILD], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, DESTDIR=cls.destdir),
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        # Under the prefix configured now (a relative default), or where the package says.
        unitdir = os.path.join(cls.prefix, cache_value("POSTERN_SYSTEMD_UNITDIR"))
        cls.unit = cls.destdir + unitdir + "/postern.service"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.root, rel)

    def test_files_and_modes(self):
        binary = self.path("sbin/postern")
        self.assertEqual(stat.S_IMODE(os.stat(binary).st_mode), 0o755)
        for rel in ("share/man/man8/postern.8", "share/man/man5/postern.ini.5",
                    "share/doc/postern/postern.ini.example"):
            self.assertEqual(stat.S_IMODE(os.stat(self.path(rel)).st_mode), 0o644, rel)
        self.assertTrue(os.path.isfile(self.unit))
        web = sorted(os.listdir(os.path.join(ROOT, "web")))
        self.assertEqual(sorted(os.listdir(self.path("share/postern/web"))), web)

    def test_installed_binary_serves_installed_panel(self):
        # A mark only the installed copy has: the page served must be that one.
        index = self.path("share/postern/web/index.html")
        with open(index, "a") as f:
            f.write("<!-- installed copy -->\n")
        saved = harness.BIN
        harness.BIN = self.path("sbin/postern")
        try:
            gw = Gateway().init()
            self.addCleanup(gw.cleanup)
            gw.start()
            r = gw.client().request("GET", "/")
            self.assertEqual(r.status, 200)
            self.assertIn(b"<!-- installed copy -->", r.raw)
        finally:
            harness.BIN = saved

    def test_unit_directives(self):
        with open(self.unit) as f:
            unit = f.read()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=postern",
                     "ProtectSystem=strict", "ReadWritePaths=/var/lib/postern",
                     "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                     "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "SystemCallFilter=@system-service",
                     f"ExecStart={self.prefix}/sbin/postern serve --config "):
            self.assertIn("\n" + line, unit)
        self.assertRegex(unit, r"\nWatchdogSec=\d+s\n")

    def test_systemd_analyze_verify(self):
        # The unit names the binary and man pages where they will be; here they sit under
        # DESTDIR, so a copy points there (the only change) and man looks there.
        tmp = tempfile.mkdtemp(prefix="postern-unit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(self.unit) as f:
            unit = f.read().replace(f"={self.prefix}/sbin/", f"={self.root}/sbin/")
        with open(os.path.join(tmp, "postern.service"), "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", "./postern.service"], cwd=tmp,
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL,
                           env=dict(os.environ, MANPATH=self.path("share/man")))
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_systemd_analyze_security_rating(self):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", self.unit],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        found = re.search(r"Overall exposure level for postern\.service: (\d+\.\d+) (\w+)",
                          r.stdout + r.stderr)
        self.assertTrue(found, r.stdout + r.stderr)
        print(f"\nsystemd-analyze security: {found.group(1)} {found.group(2)}")
        self.assertLessEqual(float(found.group(1)), 2.0)
        self.assertEqual(found.group(2), "OK")


if __name__ == "__main__":
    main()
