#!/usr/bin/env python3
"""README.md's commands, run as written against a fresh data directory.

Every ```sh block of README.md is either run here or named in SKIPPED with the reason. The only
changes made to a command are where it points: the binaries are this checkout's builds
(`target/release/` becomes the directory given), the server listens on a free port instead of
8080, and `./data` is a fresh directory. A block runs under `bash -euo pipefail`, so a command that
fails, or a `jq` that finds nothing to read, fails the test; then the output is checked against what
README says to expect.

    scripts/readme_test.py BIN_DIR      (BIN_DIR holds `fieldsync` and `fieldsync-device`)
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Blocks not run here, by their first line, and why.
SKIPPED = {
    "scripts/test.sh": "the test command: it is what runs this",
    "cargo bench -p fieldsync-e2e --bench sync            # D = 500 and 5 000 documents": "benchmarks are not tests",
    "cargo bench -p fieldsync-e2e --bench hostile -- --changes 16000   # a hostile push; another rep's syncs meanwhile": "benchmarks are not tests",
    "mobile-ffi/generate-bindings.sh [debug|release] [OUT]   # Kotlin, Swift and Python into OUT (target/bindings)": "scripts/test.sh generates and tests the bindings",
}
SERVE = "cargo run --release -p fieldsync-server -- serve"
BUILD = "cargo build --release -p fieldsync-server -p fieldsync-device"


def blocks(text):
    return [m.group(1) for m in re.finditer(r"```sh\n(.*?)```", text, re.S)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(message):
    print(f"readme_test: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        fail(__doc__.strip().splitlines()[-1].strip())
    bin_dir = Path(sys.argv[1]).resolve()
    for exe in ("fieldsync", "fieldsync-device"):
        if not (bin_dir / exe).exists():
            fail(f"{bin_dir / exe} is missing: build it first")
    port = free_port()
    readme = (ROOT / "README.md").read_text()
    work = Path(tempfile.mkdtemp(prefix="fieldsync-readme-"))

    def adapt(block):
        block = block.replace("target/release/", f"{bin_dir}/")
        return block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")

    env = dict(os.environ, FIELDSYNC_SERVER=f"http://127.0.0.1:{port}", RUST_LOG="warn")
    to_run = []
    for block in blocks(readme):
        first = block.strip().splitlines()[0]
        if first in SKIPPED:
            continue
        if first.startswith(SERVE):
            continue  # the server runs once, below, as the block says: in a fresh directory
        if first.startswith(BUILD):
            block = block.replace(first, "true  # " + first, 1)  # built already, the same code
        to_run.append(adapt(block))
    if len(to_run) != 4:
        fail(f"README has {len(to_run)} runnable blocks besides `serve`; this test knows 4: update it")

    # 1. The server, as README starts it: seeds the demo team into ./data of a fresh directory.
    server = subprocess.Popen(
        [bin_dir / "fieldsync", "serve", "--addr", f"127.0.0.1:{port}"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                fail("the server stopped before listening:\n" + "".join(banner))
            banner.append(line)
            if line.startswith("fieldsync listening on "):
                break
        else:
            fail("the server did not listen within 60 s")
        said = "".join(banner)
        if "seeded team \"demo\": 300 customers" not in said:
            fail("the server did not seed the demo team:\n" + said)

        # 2. Each block, in order, as a bash session where the server was started (README runs both
        #    from the repository root: `./data` is the same directory).
        expected = [
            # The token and the first document: bruno's cust-0001, with its kind and audience.
            ['"kind":"customer"', '"id":"cust-0001"', '"owner_rep":"bruno"'],
            # The demo team exported as a workbook and imported back: nothing changes.
            ['{"rows":300,"created":0,"updated":0,"unchanged":300,"written":true}'],
            # The metrics, with the deployment's token: the one import above, counted by route.
            ['fieldsync_http_requests_total{method="POST",route="/v1/import",status="200"} 1'],
            # The story, as "What to expect" tells it.
            [
                "sync: round 1: 85 documents",
                '"status": "verified"',
                '"error":"offline"',
                "exit 3",
                '"code": "not_found"',
                "Call back in May.",
                '"error":"not_found"',
                "exit 8",
                '"owner_rep": "bruno"',
                '"code": "outside_fence"',
                "600 m from the customer, allowed 200 m",
            ],
        ]
        for block, wanted in zip(to_run, expected):
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
            )
            if run.returncode != 0:
                fail(f"a README block failed (exit {run.returncode}):\n{block}\n--- output ---\n{run.stdout}")
            missing = [w for w in wanted if w not in run.stdout]
            if missing:
                fail(f"README promises {missing} but the block printed:\n{run.stdout}")
        print(f"readme_test: {len(to_run)} README blocks ran as written and printed what README says")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
