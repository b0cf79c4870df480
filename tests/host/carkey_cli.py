"""Running the `carkey` command as a user does, for the host tests that go through the CLI."""

import subprocess
import sys


def carkey(*args, check=True, timeout=300, env=None):
    """`carkey ARGS...` in a subprocess; with check=True, a non-zero exit fails the test
    with the command and everything it printed."""
    proc = subprocess.run([sys.executable, "-m", "carkey_host.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, f"carkey {' '.join(map(str, args))}:\n{proc.stdout}{proc.stderr}"
    return proc
