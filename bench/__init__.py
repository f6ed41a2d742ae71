"""Catalog Sync benchmark harness (issue #8): ``python -m bench [--quick] [--only NAME ...]``.

Each benchmark runs in a fresh subprocess (so peak memory and import costs are its own), prints one row per figure
and writes ``bench/results/<name>-<UTC stamp>.json`` with the command, the machine, the date, the scale, the
figures, the target and whether it held. Nothing here is estimated: a benchmark that cannot run says why.
"""
