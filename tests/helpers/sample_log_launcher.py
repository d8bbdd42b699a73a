"""Run the CLI with a recorder of what each process trained on (tests of DDP's bookkeeping).

    torchrun ... tests/helpers/sample_log_launcher.py FOLDER -- train ARGS...

installs a :class:`~reid_stra.engine.hooks.TrainerHook` that writes, after every epoch,
``FOLDER/epoch{E}_rank{R}.json``: the training samples this process used in the epoch and a digest
of its parameters, so a test can check that the ranks split the epoch and stay identical. The
library keeps no such switch: the recorder is installed here, from outside, as a user's own
hook would be.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over named tensors, in name order: equal digests mean bit-identical tensors."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def install(folder: Path) -> None:
    from reid_stra.engine import trainer
    from reid_stra.engine.hooks import TrainerHook

    rank = int(os.environ.get("RANK", "0"))  # torchrun's own variable

    class SampleLog(TrainerHook):
        def __init__(self) -> None:
            self.seen: list[int] = []

        def before_epoch(self, epoch: int) -> None:
            self.seen = []

        def after_step(self, epoch: int, step: int, indices: torch.Tensor) -> None:
            self.seen.extend(int(i) for i in indices)

        def after_epoch(self, epoch: int, record: dict[str, Any], model: torch.nn.Module) -> None:
            # Parameters only: DDP keeps each rank's BatchNorm statistics (rank 0's are saved).
            entry = {"indices": self.seen, "params_sha256": tensors_digest(dict(model.named_parameters()))}
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"epoch{epoch + 1}_rank{rank}.json").write_text(json.dumps(entry))

    original_train = trainer.train

    def train(*args: Any, **kwargs: Any) -> Any:
        kwargs["hooks"] = (*kwargs.get("hooks", ()), SampleLog())
        return original_train(*args, **kwargs)

    trainer.train = train


def main() -> None:
    folder, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: sample_log_launcher.py FOLDER -- ARGS..."
    install(Path(folder))
    from reid_stra.cli.app import main as cli_main

    sys.argv = ["reid-stra", *args]
    cli_main()


if __name__ == "__main__":
    main()
