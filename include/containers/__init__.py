"""What the containers of docker-compose.yaml run besides the engine and Airflow, and the
stack's settings and helpers every other part uses (``shared``)."""
