# The Airflow image for the weekly-report stack (docker-compose.yaml builds it as msp-weekly-report-airflow).
#
#   docker compose build            # or: docker build -t msp-weekly-report-airflow:latest .
#
# - the official Airflow image, pinned to the version in uv.lock (tests/test_compose.py checks it);
# - the OS libraries WeasyPrint loads at run time (Pango, HarfBuzz subsetting, fontconfig) and a
#   fallback font (the report's own DejaVu fonts ship in include/templates/fonts/);
# - the project's pinned Python dependencies: requirements.txt, exported from uv.lock with
#   `uv export --no-dev --no-hashes --no-emit-project`;
# - the project itself, installed so its `apache_airflow_provider` entry point registers the ten
#   source systems' connection types in the UI. The project root is /opt/airflow, so the code lives
#   in the plugins folder Airflow already reads and include/ (registry, templates) is found next
#   to it; mounting ./plugins, ./dags and ./include over these folders in development changes
#   the code without rebuilding.
#
# No connection, password or key is baked in: they come from the environment of the running
# container (a secrets backend in production, see docs/operations.md).
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 \
      libpangoft2-1.0-0 \
      libharfbuzz-subset0 \
      fontconfig \
      fonts-dejavu-core \
 && apt-get autoremove -yqq --purge \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

USER airflow
COPY --chown=airflow:0 requirements.txt /tmp/requirements.txt
# apache-airflow is named with the base image's version so pip can never move Airflow itself.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.txt

COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include /opt/airflow/include
RUN pip install --no-cache-dir --no-deps --editable /opt/airflow \
 && python -c "import weasyprint, msp_reports.render" \
 && airflow providers get msp-weekly-report >/dev/null
