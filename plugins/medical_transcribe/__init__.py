"""Airflow building blocks for Amazon Transcribe Medical, shaped like the Amazon provider's own."""
