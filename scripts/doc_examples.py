#!/usr/bin/env python3
"""Runs what the docs tell a newcomer to run, literally, and checks the output.

1. Every ```sh block of README.md and docs/protocol.md runs in bash (set -e),
   in an empty folder, in document order. A block preceded by a line
   `<!-- smoke: skip (why) -->` is not run. `swift run PRODUCT ARGS` runs the
   product `swift build` already built (a `swift` on PATH that does only that),
   so the smoke test does not rebuild or write into the clone.
   Comment lines `# ...` right after a command are its expected output: each
   must match a line the command printed, in order (`…` matches anything, a
   16-digit hex permit any permit, a 10+ digit number any number).
2. Every request in docs/protocol.md's ```json blocks is sent to a sidecar on
   the embedded default. Its answer must have the `ok` (and error `code`) of
   one of the example answers that follow it, and no field that no example
   answer to that op shows. A request with `"reply": false` must have no
   answer: a ping sent right behind it on the same connection is answered first.
Usage: scripts/doc_examples.py BINARY
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []
passed = 0


def fail(what):
    failures.append(what)
    print(f"doc-examples: FAIL {what}", file=sys.stderr)


def blocks(path, language):
    """(first line number, text, skipped) for each fenced block of `language`."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```" + language:
            start = index + 1
            end = start
            while lines[end].strip() != "```":
                end += 1
            previous = next((l for l in reversed(lines[:index]) if l.strip()), "")
            found.append((start + 1, "\n".join(lines[start:end]), previous.strip().startswith("<!-- smoke: skip")))
            index = end
        index += 1
    return found


def pattern(expected):
    text = re.escape(expected)
    text = text.replace(re.escape("…"), ".*")
    text = re.sub(r"[0-9a-f]{16}", "[0-9a-f]{16}", text)
    text = re.sub(r"\d{10,}", r"\\d+", text)
    return re.compile(text)


def instrument(block, outputs):
    """The block's lines as bash, each command with expected output captured to a file."""
    script, expectations = [], []
    lines = block.split("\n")
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expected = []
        for after in lines[i + 1:]:
            if not after.startswith("# "):
                break
            expected.append(after[2:])
        if expected:
            capture = os.path.join(outputs, f"{len(expectations)}.out")
            script.append(f"{{ {line}\n}} > {capture}\ncat {capture}")
            expectations.append((line, capture, expected))
        else:
            script.append(line)
    return "\n".join(script), expectations


def run_shell_blocks(binary, work, shims):
    global passed
    env = dict(os.environ, PATH=shims + ":" + os.environ["PATH"])
    for doc in ["README.md", "docs/protocol.md"]:
        folder = tempfile.mkdtemp(dir=work)  # each document's blocks share one folder, as a reader's terminal would
        for line, block, skipped in blocks(os.path.join(ROOT, doc), "sh"):
            where = f"{doc}:{line}"
            if skipped:
                print(f"doc-examples: {where}: skipped as marked")
                continue
            outputs = tempfile.mkdtemp(dir=work)
            script, expectations = instrument(block, outputs)
            print(f"doc-examples: {where}: running\n{block}")
            session = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env,
                                       start_new_session=True)
            try:
                status = session.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(session.pid, signal.SIGKILL)
                status = "timed out after 120 s"
            if status != 0:
                fail(f"{where}: the block exited {status}")
                continue
            if all(output_matches(where, command, capture, expected) for command, capture, expected in expectations):
                passed += 1
        # Whatever the document's blocks left running in the background (the sidecar) is stopped.
        stop_background(binary, folder)


def output_matches(where, command, capture, expected):
    """Each expected line matches a printed line, in order."""
    printed = open(capture, encoding="utf-8").read().split("\n")
    position = 0
    for want in expected:
        regex = pattern(want)
        while position < len(printed) and not regex.fullmatch(printed[position]):
            position += 1
        if position == len(printed):
            fail(f"{where}: `{command}` printed no line like `{want}`; it printed: {printed}")
            return False
        position += 1
    return True


def stop_background(binary, folder):
    subprocess.run(["pkill", "-TERM", "-f", f"^{binary} serve"], check=False)
    for _ in range(100):
        if not os.path.exists(os.path.join(folder, "fusebox.sock")):
            return
        time.sleep(0.1)
    fail(f"a sidecar the docs started in {folder} did not stop on SIGTERM")


class Sidecar:
    def __init__(self, binary, work):
        self.folder = tempfile.mkdtemp(dir=work)
        self.process = subprocess.Popen([binary, "serve", "--http", "off", "--store", "off"], cwd=self.folder,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(os.path.join(self.folder, "fusebox-admin.sock")):
                break
            time.sleep(0.05)
        self.main = self.connect("fusebox.sock")
        self.admin = self.connect("fusebox-admin.sock")

    def connect(self, name):
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(os.path.join(self.folder, name))
        return connection.makefile("rw", encoding="utf-8")

    def ask(self, request, admin=False):
        stream = self.admin if admin else self.main
        stream.write(json.dumps(request) + "\n")
        stream.flush()
        return json.loads(stream.readline())

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)


def run_protocol_examples(binary, work):
    global passed
    sidecar = Sidecar(binary, work)
    permit = None
    parsed = [(line, [json.loads(text) for text in block.split("\n") if text.strip()])
              for line, block, _ in blocks(os.path.join(ROOT, "docs/protocol.md"), "json")]
    # The fields an op's answer may have: those any example answer to that op shows.
    fields = {}
    for _, entries in parsed:
        op = None
        for entry in entries:
            op = entry["op"] if "op" in entry else op
            if op and "op" not in entry and "event" not in entry:
                fields.setdefault(op, set()).update(entry.keys())
    try:
        for line, entries in parsed:
            for index, request in enumerate(entries):
                if "op" not in request:
                    continue
                examples = []
                for answer in entries[index + 1:]:
                    if "op" in answer:
                        break
                    if "event" not in answer:
                        examples.append(answer)
                if request.get("permit") and permit:
                    request = dict(request, permit=permit)  # the docs' permit ids are examples
                if request.get("reply") is False:
                    where = f"docs/protocol.md:{line}: {json.dumps(request)}"
                    sidecar.main.write(json.dumps(request) + "\n")
                    behind = sidecar.ask({"op": "ping", "id": "behind"})
                    if behind != {"ok": True, "id": "behind"}:
                        fail(f"{where}: the next line read was {behind}, not the ping's answer: it was answered")
                    else:
                        passed += 1
                    continue
                answer = sidecar.ask(request, admin=request["op"] in ("force", "reset"))
                if answer.get("permit"):
                    permit = answer["permit"]
                where = f"docs/protocol.md:{line}: {json.dumps(request)}"
                documented = fields.get(request["op"], set())
                matching = [e for e in examples if e.get("ok") == answer.get("ok")
                            and (e.get("error") or {}).get("code") == (answer.get("error") or {}).get("code")]
                if not matching:
                    fail(f"{where}: answered {answer}, unlike every example {examples}")
                elif set(answer) - documented:
                    fail(f"{where}: answered fields the examples do not show: {sorted(set(answer) - documented)}")
                else:
                    passed += 1
    finally:
        sidecar.stop()


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="fusebox-doc-examples-")
    shims = os.path.join(work, "bin")
    os.mkdir(shims)
    products = os.path.dirname(binary)
    with open(os.path.join(shims, "swift"), "w") as shim:
        shim.write(f"""#!/usr/bin/env bash
# `swift run PRODUCT ARGS…` as the docs write it, on the product already built.
[ "$1" = run ] && [ -x "{products}/$2" ] || {{ echo "doc-examples: only 'swift run PRODUCT' is supported in docs, got: swift $*" >&2; exit 1; }}
product="$2"; shift 2
exec "{products}/$product" "$@"
""")
    os.chmod(os.path.join(shims, "swift"), 0o755)
    run_shell_blocks(binary, work, shims)
    run_protocol_examples(binary, work)
    subprocess.run(["rm", "-rf", work], check=False)
    print(f"doc-examples: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
