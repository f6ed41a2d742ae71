-- Runs once, when the postgres service starts on an empty data volume (docker-entrypoint-initdb.d).
-- The Airflow metadata database ("airflow") is created by the image from POSTGRES_DB; the hub gets its own
-- database on the same server so that Airflow's migrations and the hub's never share a schema.
CREATE DATABASE catalog_sync_hub OWNER airflow;
