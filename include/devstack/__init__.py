"""The developer's stack and the cluster harness: the engine, S3 and Airflow as local processes."""
