"""Run the CLI in this process and stop it at a named point of its progress (tests only).

Tests of kill-and-resume must hit a chosen moment (mid-epoch, the middle of a checkpoint write,
between two batches) whatever the machine's speed, so they name the moment instead of timing it:

    python tests/helpers/kill_launcher.py --kill-at STAGE[:NAME]@N [--kill-signal INT] -- ARGS...

runs ``reid-stra ARGS...`` and sends this process SIGKILL (or ``--kill-signal``: INT as Ctrl-C, TERM as
``kill``) the N-th time (default 1) it passes the point. The library holds no such hook: the
points are installed here, from outside, on what the library exposes:

- ``train.batch``: a :class:`~reid_stra.engine.hooks.TrainerHook` added to the run; it fires after
  each optimization step.
- ``extract.batch[:rankR]``: wraps the batch stream ``extract`` consumes; it fires when batch N has
  been computed, before the extraction takes it (batches 1..N-1 are done).
- ``atomic.before_replace:NAME``: wraps ``os.replace``; it fires when a finished temporary file is
  about to replace ``NAME`` (a glob), so the new version is never published.

Before dying it prints one line to stderr (:data:`KILL_MARK`), so a test can assert that the stop
landed where intended.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import signal
import sys
from pathlib import Path
from typing import Any

KILL_MARK = "reid-stra: killed at"


class KillPoint:
    """Counts the passes at ``STAGE[:NAME]@N`` and sends the signal at the N-th."""

    def __init__(self, spec: str, signal_name: str) -> None:
        self.spec = spec
        point, _, count = spec.partition("@")
        self.stage, _, self.name = point.partition(":")
        self.count = int(count or 1)
        self.signal = getattr(signal, "SIG" + signal_name)
        self.passes = 0

    def passed(self, stage: str, name: str = "") -> None:
        if stage != self.stage or (self.name and not fnmatch.fnmatchcase(name, self.name)):
            return
        self.passes += 1
        if self.passes == self.count:
            sys.stderr.write(f"{KILL_MARK} {stage}:{name} #{self.passes} (kill-at={self.spec})\n")
            sys.stderr.flush()
            # raise_signal, not os.kill: the signal arrives in this thread before the call returns
            # and its Python handler runs right here, so a Ctrl-C lands at this point on a loaded
            # machine too.
            signal.raise_signal(self.signal)


def install(point: KillPoint) -> None:
    """Put ``point`` on what the library exposes (see the module docstring)."""
    if point.stage == "train.batch":
        from reid_stra.engine import trainer
        from reid_stra.engine.hooks import TrainerHook

        class KillHook(TrainerHook):
            def after_step(self, epoch: int, step: int, indices: Any) -> None:
                point.passed("train.batch")

        original_train = trainer.train

        def train(*args: Any, **kwargs: Any) -> Any:
            kwargs["hooks"] = (*kwargs.get("hooks", ()), KillHook())
            return original_train(*args, **kwargs)

        trainer.train = train
    elif point.stage == "extract.batch":
        from reid_stra.retrieval import extract_file

        original_batches = extract_file.iterate_batches
        rank = f"rank{os.environ.get('RANK', '0')}"  # torchrun's own variable

        def iterate_batches(*args: Any, **kwargs: Any) -> Any:
            for batch in original_batches(*args, **kwargs):
                point.passed("extract.batch", rank)
                yield batch

        extract_file.iterate_batches = iterate_batches
    elif point.stage == "atomic.before_replace":
        original_replace = os.replace

        def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
            name = Path(target).name
            if Path(source).name.startswith(f".{name}.") and str(source).endswith(".tmp"):
                point.passed("atomic.before_replace", name)
            original_replace(source, target, *args, **kwargs)

        os.replace = replace
    else:
        raise SystemExit(f"kill_launcher: unknown stage {point.stage!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-at", required=True, help="STAGE[:NAME]@N")
    parser.add_argument("--kill-signal", default="KILL", choices=["KILL", "INT", "TERM"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    install(KillPoint(options.kill_at, options.kill_signal))
    from reid_stra.cli.app import main as cli_main

    sys.argv = ["reid-stra", *args]
    cli_main()


def kill_arguments(point: str, signal_name: str = "KILL") -> list[str]:
    """This script and its options: what ``python`` (or torchrun) runs, before the CLI's arguments."""
    return [str(Path(__file__).resolve()), "--kill-at", point, "--kill-signal", signal_name, "--"]


def killed_launcher(point: str, signal_name: str = "KILL") -> list[str]:
    """The command prefix that runs the CLI with ``point`` installed (``+ ARGS`` to complete it)."""
    return [sys.executable, *kill_arguments(point, signal_name)]


if __name__ == "__main__":
    main()
