"""Feature files, extraction, FAISS indexes and search.

- ``features``: the ``feats.npy`` + ``feats.json`` sidecar format (``save_features``, ``load_features``,
  ``check_compatible``).
- ``mapped``: ``row_blocks`` / ``gather_rows``, large memory-mapped files read in bounded memory.
- ``inputs``: INPUT... (images, folders, globs, path lists) -> sorted unique image paths; ids from names.
- ``extract``: ``extract_features`` / ``extract`` (batched, parallel decoding, CPU and CUDA).
- ``extract_file``: ``extract_to_file``, resumable chunked extraction into a feature file.
- ``index``: ``build_index``, ``exact_index``, ``SearchIndex.search`` (the index kinds and their options).
- ``index_store``: ``save_index`` beside the features, ``load_or_build_index`` (reuse while current).
- ``index_ondisk``: FAISS's on-disk inverted lists (merged into a data file, memory-mapped for search).
- ``index_shards``: ``save_trained``, ``build_shard``, ``merge_shards``: an on-disk index built in shards.
- ``search``: ``extract_query_features`` and ``search_gallery`` (what ``reid-stra search`` runs).
"""
