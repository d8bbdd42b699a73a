"""Dataset readers: Market-1501, DukeMTMC-reID, MSMT17, CUHK03-NP and a generic folder dataset.

One module per reader family (``market``, ``msmt``, ``folder``), as torchreid; they register
themselves in ``registry`` when this package is imported. ``samples`` is the model they all return,
``discovery`` finds folders under ``--root``, ``checks`` verifies images and warns about queries.
"""

from reid_stra.data.datasets import folder, market, msmt  # noqa: F401  (registers the readers)
from reid_stra.data.datasets.checks import verify_images
from reid_stra.data.datasets.discovery import find_dataset_dir, list_images, read_named_folder
from reid_stra.data.datasets.registry import (
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
    parse_dataset_options,
    register_dataset,
)
from reid_stra.data.datasets.samples import (
    MARKET_EXAMPLE,
    MARKET_PATTERN,
    SPLITS,
    ReidDataset,
    Sample,
    parse_market_name,
    relabel_train,
    summarize_split,
)

__all__ = [
    "MARKET_EXAMPLE",
    "MARKET_PATTERN",
    "SPLITS",
    "DatasetInfo",
    "ReidDataset",
    "Sample",
    "dataset_info",
    "find_dataset_dir",
    "list_datasets",
    "list_images",
    "load_dataset",
    "parse_dataset_options",
    "parse_market_name",
    "read_named_folder",
    "register_dataset",
    "relabel_train",
    "summarize_split",
    "verify_images",
]
