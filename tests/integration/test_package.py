"""The Debian package: `scripts/deb.sh` (what `make deb` runs) builds it, lintian reports no
error, and it is installed, checked and purged in a throwaway root: an overlay over / in a
mount namespace of its own (unshare), entered with chroot, so the real system never sees
the package, its user or its files. Inside: dpkg -i runs the real maintainer scripts; the
files, the postern system user, owners and modes, the conffile, the unit enabled but not
started; systemd-analyze verifies the installed unit; the packaged binary, run as postern
with the packaged configuration, serves the packaged panel; dpkg --purge removes it all."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from harness import free_port, main, stop_process  # noqa: E402


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="postern-deb-")
        started = time.monotonic()
        r = run(["sh", os.path.join(ROOT, "scripts", "deb.sh"), os.path.join(cls.tmp, "out")],
                timeout=900)
        cls.build_seconds = time.monotonic() - started
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        cls.debs = sorted(glob.glob(os.path.join(cls.tmp, "out", "postern_*.deb")))
        cls.changes = glob.glob(os.path.join(cls.tmp, "out", "postern_*.changes"))
        assert len(cls.debs) == 1 and len(cls.changes) == 1, os.listdir(cls.tmp + "/out")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_lintian_reports_no_error(self):
        r = run(["lintian", "--pedantic", self.changes[0]], timeout=300)
        tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:", "I:", "P:")]
        print(f"\npackage built in {self.build_seconds:.0f}s; lintian: "
              + ("; ".join(tags) or "nothing"))
        self.assertEqual([t for t in tags if t.startswith("E:")], [])
        self.assertIn(r.returncode, (0, 1), r.stderr)  # 1 only for tags, none of them E:

    def test_version_is_the_projects(self):
        r = run(["dpkg-deb", "-f", self.debs[0], "Version"])
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            self.assertIn(f"project(postern VERSION {r.stdout.strip()} ", f.read())

    def test_service_across_upgrade_and_removal(self):
        # Enabled but not started on install; an upgrade restarts it only if it runs
        # (never stops it for good); removal stops it before the binary goes.
        scripts = {}
        for name in ("preinst", "postinst", "prerm"):
            r = run(["dpkg-deb", "-I", self.debs[0], name])
            scripts[name] = r.stdout if r.returncode == 0 else ""
        self.assertIn("deb-systemd-helper enable 'postern.service'", scripts["postinst"])
        self.assertIn("deb-systemd-invoke try-restart 'postern.service'", scripts["postinst"])
        self.assertNotRegex(scripts["postinst"], r"deb-systemd-invoke (start|restart) ")
        self.assertNotIn("deb-systemd-invoke stop", scripts["preinst"])
        self.assertRegex(scripts["prerm"], r'"\$1" = remove .*\n\s*deb-systemd-invoke stop '
                         r'postern\.service')

    def test_install_check_purge_in_a_throwaway_root(self):
        # The whole life in one namespace; the steps assert there and print what failed.
        r = run(["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                 os.path.abspath(__file__), "--in-namespace", self.tmp, self.debs[0]],
                timeout=300)
        print(r.stdout[-4000:])
        self.assertEqual(r.returncode, 0, r.stdout[-4000:] + r.stderr[-4000:])
        self.assertIn("all steps passed", r.stdout)


# ---- Inside the mount namespace ----

class Root:
    """An overlay over / at tmp/merged (the changes go to tmp/upper), with /dev and /proc
    bound in: a chroot there sees the real system, and nothing it writes reaches it."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "merged")
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        must(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir=/,upperdir={tmp}/upper,workdir={tmp}/work", self.dir])
        for d in ("dev", "proc"):
            must(["mount", "--rbind", "/" + d, os.path.join(self.dir, d)])

    def run(self, *argv, env=None, timeout=120):
        full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive"}
        full.update(env or {})
        return run(["chroot", self.dir, *argv], env=full, timeout=timeout)

    def must(self, *argv, **kw):
        r = self.run(*argv, **kw)
        assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def stat(self, path):
        """owner:group mode of path in the root, like "postern:postern 750"."""
        return self.must("stat", "-c", "%U:%G %a", path).strip()

    def exists(self, path):
        return os.path.lexists(self.dir + path)


def must(argv):
    r = run(argv)
    assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def step(name):
    print("step:", name, flush=True)


def packaged_processes(root):
    """PIDs running the installed /usr/sbin/postern (not another session's postern: the
    same file, by device and inode)."""
    binary = os.stat(root.dir + "/usr/sbin/postern")
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (binary.st_dev, binary.st_ino):
            pids.append(pid)
    return pids


def serve_once(root):
    """The packaged binary as the service runs it (user postern, in /var/lib/postern, the
    packaged configuration), on a free loopback port; answers GET / with the panel."""
    root.must("runuser", "-u", "postern", "--", "postern", "init", "--db",
              "/var/lib/postern/postern.db", "--account", "acme", "--admin", "admin@acme.test",
              env={"POSTERN_PASSWORD": "correct horse battery"})
    port = free_port()
    log = open(os.path.join(root.dir, "var/lib/postern/serve.log"), "wb")
    proc = subprocess.Popen(
        ["chroot", "--userspec=postern:postern", root.dir, "sh", "-c",
         f"cd /var/lib/postern && exec /usr/sbin/postern serve --config "
         f"/etc/postern/postern.ini --listen 127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    try:
        import urllib.request
        deadline, body = time.monotonic() + 20, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    body = resp.read()
                    break
            except OSError:
                time.sleep(0.1)
        with open(os.path.join(root.dir, "usr/share/postern/web/index.html"), "rb") as f:
            assert body == f.read(), f"GET / did not serve the packaged panel: {body!r:.200}"
    finally:
        stop_process(proc)
        log.close()
    assert proc.returncode == 0, f"postern serve exited {proc.returncode}"
    # What it made belongs to the service's user, not to root.
    assert root.stat("/var/lib/postern/postern.db").startswith("postern:postern "), \
        root.stat("/var/lib/postern/postern.db")
    assert root.exists("/var/lib/postern/dkim-master.key")


def in_namespace(tmp, deb):
    root = Root(tmp)
    step("dpkg -i")
    assert not root.run("getent", "passwd", "postern").stdout, "user postern exists before"
    root.must("dpkg", "-i", deb, timeout=300)
    assert "install ok installed" in root.must("dpkg-query", "-W", "-f=${Status}", "postern")

    step("files")
    for path in ("/usr/sbin/postern", "/usr/share/postern/web/index.html",
                 "/usr/share/man/man8/postern.8.gz", "/usr/share/man/man5/postern.ini.5.gz",
                 "/usr/share/doc/postern/postern.ini.example",
                 "/usr/share/doc/postern/copyright", "/lib/systemd/system/postern.service"):
        assert root.exists(path), path
    assert root.stat("/usr/sbin/postern") == "root:root 755"

    step("user")
    pw = root.must("getent", "passwd", "postern").strip().split(":")
    assert 0 < int(pw[2]) < 1000, pw  # a system user
    assert pw[5] == "/var/lib/postern" and pw[6] in ("/usr/sbin/nologin", "/bin/false"), pw
    assert root.must("id", "-gn", "postern").strip() == "postern"

    step("owners and modes")
    assert root.stat("/var/lib/postern") == "postern:postern 750", root.stat("/var/lib/postern")
    assert root.stat("/etc/postern/postern.ini") == "root:postern 640"
    conffiles = root.must("dpkg-query", "-W", "-f=${Conffiles}", "postern")
    assert "/etc/postern/postern.ini " in conffiles, conffiles

    step("unit enabled, not started")
    wants = "/etc/systemd/system/multi-user.target.wants/postern.service"
    assert os.readlink(root.dir + wants) == "/lib/systemd/system/postern.service"
    assert not packaged_processes(root), "postern was started on install"

    step("systemd-analyze verify")
    r = root.run("systemd-analyze", "verify", "/lib/systemd/system/postern.service")
    assert (r.returncode, r.stdout + r.stderr) == (0, ""), r.stdout + r.stderr

    step("the packaged daemon serves the packaged panel")
    serve_once(root)

    step("reinstalled (as an upgrade): the edited configuration and the store stay")
    with open(root.dir + "/etc/postern/postern.ini", "a") as f:
        f.write("; edited by the operator\n")
    root.must("dpkg", "-i", "--force-confdef", "--force-confold", deb, timeout=300)
    with open(root.dir + "/etc/postern/postern.ini") as f:
        assert "; edited by the operator" in f.read()
    assert root.stat("/etc/postern/postern.ini") == "root:postern 640"
    assert root.stat("/var/lib/postern") == "postern:postern 750"
    assert root.exists("/var/lib/postern/postern.db")
    assert root.must("getent", "passwd", "postern").strip().split(":") == pw

    step("dpkg --purge")
    root.must("dpkg", "--purge", "postern", timeout=300)
    assert "not-installed" in root.run("dpkg-query", "-W", "-f=${Status}", "postern").stdout \
        or root.run("dpkg-query", "-W", "postern").returncode != 0
    for path in ("/usr/sbin/postern", "/etc/postern", "/var/lib/postern", wants,
                 "/lib/systemd/system/postern.service", "/usr/share/postern"):
        assert not root.exists(path), f"{path} is left after purge"
    print("all steps passed")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-namespace":
        in_namespace(sys.argv[2], sys.argv[3])
    else:
        main()
