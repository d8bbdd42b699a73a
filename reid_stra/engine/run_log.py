"""The run's log: ``metrics.jsonl`` lines read back on resume, and the one-line epoch summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """Earlier epochs' log lines, dropping any epoch the resumed run will repeat."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and int(record.get("epoch", 0)) <= upto_epoch:
            records.append(record)
    return records


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    text = (
        f"epoch {record['epoch']}/{epochs}: loss {record.get('loss', float('nan')):.4f}"
        f" acc {record.get('acc', float('nan')):.3f} lr {record['lr']:.2e}"
        f" {record['images_per_s']:.1f} img/s"
    )
    if "mAP" in record:
        text += f" | val mAP {record['mAP']:.4f} rank-1 {record['rank1']:.4f}"
    return text
