"""ctest webhook_verifiers: requests signed by Postern's whsig (printed by the whsig_sample
test program, argv[1]) go through verify.js, the official verifiers; each must be accepted or
refused as the line's "expect" says, and both outcomes must occur."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    sample = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in sample.stdout.splitlines() if line]
    verdicts = subprocess.run(["node", os.path.join(HERE, "verify.js")], input=sample.stdout,
                              capture_output=True, text=True, timeout=60, check=True)
    answers = [json.loads(line) for line in verdicts.stdout.splitlines() if line]
    assert len(answers) == len(lines), f"{len(lines)} requests, {len(answers)} verdicts"
    for req, ans in zip(lines, answers):
        if ans["ok"] != req["expect"]:
            sys.exit(f"{req['format']} request expected ok={req['expect']}, got {ans}: {req}")
    expected = {(req["format"], req["expect"]) for req in lines}
    assert expected == {("standard", True), ("standard", False), ("sendgrid", True),
                        ("sendgrid", False)}, expected
    print(f"{len(lines)} requests judged as expected by the official verifiers")


if __name__ == "__main__":
    main()
