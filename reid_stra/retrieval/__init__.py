"""Feature files, extraction, FAISS indexes and search.

- ``features``: the ``feats.npy`` + ``feats.json`` sidecar format (``save_features``, ``load_features``,
  ``check_compatible``).
- ``inputs``: INPUT... (images, folders, globs, path lists) -> sorted unique image paths; ids from names.
- ``extract``: ``extract_features`` / ``extract`` (batched, parallel decoding, CPU and CUDA).
- ``extract_file``: ``extract_to_file``, resumable chunked extraction into a feature file.
- ``index``: ``build_index``, ``load_or_build_index``, ``SearchIndex.search``.
- ``search``: ``extract_query_features`` and ``search_gallery`` (what ``reid-stra search`` runs).
"""
