"""One child process run to its end, with its peak resident memory.

`os.wait4` reports the child's own `ru_maxrss` (kilobytes on Linux), where
`resource.getrusage(RUSAGE_CHILDREN)` would give the largest of every child
so far. Used by the side-by-side scripts so that each side's time comes
with its memory.
"""

import os
import subprocess
import tempfile


def run(cmd, env=None, cwd=None):
    """Runs `cmd`; returns (exit code, stdout, stderr, peak RSS in MB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return child.returncode, out.read(), err.read(), usage.ru_maxrss / 1024
