"""The steps of one export, in the order `annotation.export.services` runs them.

    rows.py      read every dialogue with its final label (and a topic-following file)
    split.py     order the rows, put each prompt's rows in one split, count each split
    writers.py   write each split's files: Aegis JSON, Parquet, CSV, guard SFT JSONL
    card.py      the dataset card (README.md)
    manifest.py  the manifest: parameters, counts, the sha256 and size of every file

Each step takes plain data and returns it; the steps read the database (dialogues,
categories) but never write it, and never report progress: the service does both.
"""
