"""The README's two commands in either order, in one tree: `make run` configures a release
build, `make test` a test build. A release binary cannot read the test clock, a test build
registers every layer of the suite, and a test build without a test library stops at
configure time naming it, rather than passing with that layer missing."""
import glob
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import ROOT, main

SRC = os.environ.get("POSTERN_SRC", ROOT)
CLOCK = b"POSTERN_TEST_CLOCK"


def run(args, cwd, env=None, timeout=540):
    return subprocess.run(args, cwd=cwd, env=dict(os.environ, **(env or {})), text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)


def ok(proc):
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def binary_reads_clock(path):
    with open(path, "rb") as f:
        return CLOCK in f.read()


class BuildModesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="postern-build-modes-")
        cls.tree = os.path.join(cls.tmp, "postern")
        shutil.copytree(SRC, cls.tree, ignore=shutil.ignore_patterns(
            ".git", "build", "build-*", "var", "node_modules", "__pycache__"))
        # The panel test's npm packages, as `make test` found them installed here.
        modules = os.path.join(SRC, "tests", "e2e", "node_modules")
        if os.path.isdir(modules):
            os.symlink(modules, os.path.join(cls.tree, "tests", "e2e", "node_modules"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_release_build_then_test_build_in_one_tree(self):
        build = os.path.join(self.tree, "build")
        ok(run(["make", "release-build", "JOBS=2"], self.tree))
        self.assertFalse(binary_reads_clock(os.path.join(build, "postern")),
                         "the release binary can read the test clock")

        ok(run(["make", "test-build", "JOBS=2"], self.tree))
        self.assertTrue(binary_reads_clock(os.path.join(build, "postern")))
        listed = ok(run(["ctest", "-N"], build)).stdout
        units = sorted(os.path.basename(p)[len("test_"):-2]
                       for p in glob.glob(os.path.join(self.tree, "tests", "unit", "test_*.c")))
        self.assertTrue(units)
        for unit in units:
            self.assertIn(f"unit_{unit}\n", listed)
        self.assertIn("it_dkim_verify\n", listed)
        self.assertTrue(os.access(os.path.join(build, "test_dkim"), os.X_OK))

        # And back: `make run` after `make test` is a release binary again.
        ok(run(["make", "release-build", "JOBS=2"], self.tree))
        self.assertFalse(binary_reads_clock(os.path.join(build, "postern")))

    def test_a_test_build_without_cmocka_stops_naming_it(self):
        # pkg-config sees every library of this machine but cmocka.
        pc = os.path.join(self.tmp, "pkgconfig-without-cmocka")
        os.makedirs(pc)
        dirs = ok(run(["pkg-config", "--variable", "pc_path", "pkg-config"], self.tmp))
        for d in dirs.stdout.strip().split(":"):
            for f in glob.glob(os.path.join(d, "*.pc")):
                name = os.path.basename(f)
                if name != "cmocka.pc" and not os.path.exists(os.path.join(pc, name)):
                    os.symlink(f, os.path.join(pc, name))
        env = {"PKG_CONFIG_LIBDIR": pc, "PKG_CONFIG_PATH": ""}
        base = ["cmake", "-S", self.tree, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
        release = run(base + ["-B", os.path.join(self.tmp, "b-release")], self.tmp, env)
        self.assertEqual(release.returncode, 0, release.stderr)
        tests = run(base + ["-B", os.path.join(self.tmp, "b-tests"), "-DPOSTERN_TESTS=ON",
                            "-DPOSTERN_TEST_CLOCK=ON"], self.tmp, env)
        self.assertNotEqual(tests.returncode, 0, tests.stdout)
        self.assertIn("cmocka", tests.stderr + tests.stdout)


if __name__ == "__main__":
    main()
