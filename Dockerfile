# One image for every Catalog Sync service in docker-compose.yaml: the Airflow components and the sandbox.
FROM apache/airflow:3.3.2-python3.11

# The exact pins tested together (apache-airflow==3.3.2 among them, so pip cannot move Airflow itself).
# Copied alone first so that the dependency layer is rebuilt only when the pins change.
COPY --chown=airflow:0 requirements.txt /opt/catalog-sync/requirements.txt
RUN pip install --no-cache-dir -r /opt/catalog-sync/requirements.txt

# The package itself, installed without dependencies: they are all in the layer above.
COPY --chown=airflow:0 pyproject.toml /opt/catalog-sync/pyproject.toml
COPY --chown=airflow:0 include /opt/catalog-sync/include
RUN pip install --no-cache-dir --no-deps /opt/catalog-sync

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml
# Mount points of the named volumes in docker-compose.yaml: a new volume takes the owner of the folder it is
# mounted on, so creating them here as the airflow user keeps them writable by the services.
RUN mkdir -p /opt/airflow/auth /opt/airflow/catalog-sync

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
