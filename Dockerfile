# Catalog Sync images. `docker build .` gives the production image (the last stage): Airflow, the runtime pins and
# the catalog_sync package, with no test tool and no sandbox. docker-compose.yaml also builds the `sandbox` stage,
# which adds the stand-in systems for local demos.
FROM apache/airflow:3.3.2-python3.11 AS runtime

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

# The stand-in ERP, PIM, DAM, storefront and supplier portal, with the demo catalog: local demos only.
FROM runtime AS sandbox
COPY --chown=airflow:0 sandbox/requirements.txt /opt/catalog-sync-sandbox/requirements.txt
RUN pip install --no-cache-dir -r /opt/catalog-sync-sandbox/requirements.txt
COPY --chown=airflow:0 sandbox /opt/catalog-sync-sandbox
RUN pip install --no-cache-dir --no-deps /opt/catalog-sync-sandbox
COPY --chown=airflow:0 demo-data /opt/catalog-sync-demo-data
ENV CATALOG_SYNC_DEMO_CATALOG=/opt/catalog-sync-demo-data/luma

# The default target: production.
FROM runtime AS production
