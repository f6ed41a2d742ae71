"""Flows: what each DAG does, step by step, as plain functions over the systems and the hub."""
