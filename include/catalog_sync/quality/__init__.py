"""Data-quality gates (issue #5): Great Expectations Core suites at three layers, row-level quarantine, KPIs.

* layer 0, syntax: each record on its own is well-formed (required fields, codes, formats, check digits, dates);
* layer 1, business rules: records against the rules and the batch (price bands, taxonomy, family attributes,
  channel content rules, parent/variant structure, asset windows, duplicates);
* layer 2, cross-system consistency: a frame joining the systems' values of each record agrees.

Entry points: :func:`catalog_sync.quality.gate.run_gate`, :func:`catalog_sync.quality.persist.persist_gate_result`,
:mod:`catalog_sync.quality.kpis`, :func:`catalog_sync.quality.docs.build_data_docs`. Importing this package does not
import Great Expectations; that happens on the first gate run inside a task.
"""
