"""The man pages postern(8) and postern.ini(5): they render without a warning (man-db and
groff, as an operator's `man` would), postern.ini(5) has every section and key of the
configuration table in src/config.c, postern(8) every command of `postern --help`, and
both carry the project's version."""
import os
import re
import subprocess
import unittest

from harness import BIN, ROOT, main

MAN = os.path.join(ROOT, "man")
PAGES = ("postern.8", "postern.ini.5")


def run(*argv):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def page(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


def config_keys():
    """(section, key) of every row of the configuration table."""
    with open(os.path.join(ROOT, "src", "config.c")) as f:
        rows = re.findall(r'^\s*KEY\("([a-z_]+)",\s*"([a-z_]+)"', f.read(), re.M)
    assert len(rows) > 40, rows
    return rows


def bold_words(text):
    """The words set in bold by .B and .BR lines (alternating fonts: the odd arguments)."""
    words = set()
    for macro, args in re.findall(r'^\.(B|BR|BI) (.*)$', text, re.M):
        parts = re.findall(r'"[^"]*"|\S+', args)
        for i, part in enumerate(parts):
            if macro == "B" or i % 2 == 0:
                words.update(w.strip('",') for w in part.split())
    return words


class ManTest(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        for name in PAGES:
            path = os.path.join(MAN, name)
            r = run("man", "--warnings", "-E", "UTF-8", "-l", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, "", name)
            self.assertIn("postern", r.stdout)
            r = run("groff", "-man", "-ww", "-z", path)
            self.assertEqual((r.returncode, r.stderr), (0, ""), name)

    def test_every_config_key_is_in_postern_ini_5(self):
        text = page("postern.ini.5")
        sections = dict(re.findall(r'^\.SH \[([a-z_]+)\]\n(.*?)(?=^\.SH |\Z)', text,
                                   re.M | re.S))
        missing = []
        for section, key in config_keys():
            if section not in sections:
                missing.append(f"[{section}]")
            elif key not in bold_words(sections[section]):
                missing.append(f"[{section}] {key}")
        self.assertEqual(missing, [], "keys of src/config.c not in man/postern.ini.5")

    def test_every_command_is_in_postern_8(self):
        r = run(BIN, "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        block = r.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        # A command is one or two words before its summary ("domain approve Approve ...").
        commands = [re.match(r"\s+([a-z]+(?: [a-z]+)?)(?=\s{2,}| [A-Z])", line).group(1)
                    for line in block.splitlines()]
        self.assertIn("serve", commands)
        text = page("postern.8")
        commands_section = text.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0]
        for command in commands:
            found = re.search(rf'(?m)^\.BI? "?{re.escape(command)}\b', commands_section)
            self.assertTrue(found, f"postern {command} is not in man/postern.8")

    def test_pages_carry_the_project_version(self):
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            version = re.search(r"project\(postern VERSION (\S+)", f.read()).group(1)
        for name in PAGES:
            th = re.search(r"^\.TH .*$", page(name), re.M).group(0)
            self.assertIn(f'"Postern {version}"', th, name)


if __name__ == "__main__":
    main()
