"""What the containers of docker-compose.yaml run besides the engine and Airflow."""
