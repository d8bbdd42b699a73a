"""A test-only hook that kills this process with SIGKILL at a named point of its work.

Tests of kill-and-resume must hit a chosen moment (mid-epoch, the middle of a checkpoint write,
between two chunks) whatever the machine's speed, so they name the moment instead of timing it:
``REID_STRA_KILL_AT="STAGE[:NAME]@N"`` kills the process the N-th time (default 1) it passes
``kill_point(STAGE, NAME)``; ``NAME`` may be a glob (``chunk_*.npy``). Before dying it prints one
line to stderr, so a test can assert that the kill landed where intended. ``REID_STRA_KILL_SIGNAL``
(``INT``, ``TERM``) sends that signal instead of SIGKILL, as Ctrl-C or ``kill`` would. Unset
(always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys

KILL_ENV = "REID_STRA_KILL_AT"
SIGNAL_ENV = "REID_STRA_KILL_SIGNAL"
KILL_MARK = "reid-stra: killed at"
_passes: dict[str, int] = {}  # per process: how often the configured point was passed


def kill_point(stage: str, name: str = "") -> None:
    """Die here if ``REID_STRA_KILL_AT`` names this stage (and name) and its count is reached."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    point, _, count = spec.partition("@")
    want_stage, _, want_name = point.partition(":")
    if want_stage != stage or (want_name and not fnmatch.fnmatchcase(name, want_name)):
        return
    _passes[spec] = _passes.get(spec, 0) + 1
    if _passes[spec] == int(count or 1):
        sys.stderr.write(f"{KILL_MARK} {stage}:{name} #{_passes[spec]} ({KILL_ENV}={spec})\n")
        sys.stderr.flush()
        # raise_signal, not os.kill: the signal arrives in this thread before the call returns and
        # its Python handler runs right here, so a Ctrl-C lands at this point on a loaded machine
        # too (os.kill left it to the next bytecode check, which could fall inside a destructor,
        # where a KeyboardInterrupt is swallowed and the run went on to exit 0).
        signal.raise_signal(getattr(signal, "SIG" + os.environ.get(SIGNAL_ENV, "KILL")))
