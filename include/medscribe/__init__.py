"""A self-hosted engine that speaks Amazon Transcribe Medical's batch API."""
