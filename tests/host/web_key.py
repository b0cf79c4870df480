"""Test support for the phone key page: Node running web/ (web/test/key_driver.mjs) and the car it visits."""

import json
import shutil
import subprocess

import pytest

from carkey_host import paths

DRIVER = paths.REPO_ROOT / "web" / "testing" / "key_driver.mjs"


def node_or_skip():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the phone key page's tests need Node 20+ (apt-get install nodejs)")
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v").split(".")[0])
    if major < 20:
        pytest.skip(f"node {major} is too old: the phone key page's tests need Node 20+")
    # Node 20 and 21 have WebSocket behind a flag; 22 and later have it on by default.
    return [node, "--experimental-websocket"] if major < 22 else [node]


class KeyDriver:
    """One phone key (the page's Keyring) in a Node process, driven line by line."""

    def __init__(self, node_cmd):
        self.proc = subprocess.Popen(node_cmd + ["--no-warnings", str(DRIVER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def call(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the key driver exited: " + self.proc.stderr.read()[-3000:])
        answer = json.loads(line)
        return answer

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
