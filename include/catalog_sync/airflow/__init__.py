"""Airflow glue: the only package code (besides ``dags/``) allowed to import Airflow.

Hooks turn Airflow connections into connector clients; defaults and notifiers are shared by the DAGs.
"""
