"""A failed run reaches people through Airflow's own notifiers: an email, sent for real."""

from __future__ import annotations

import email
import socketserver
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG

from medical_transcribe import alerts


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message and keep it."""

    def handle(self) -> None:
        self.wfile.write(b"220 localhost ready\r\n")
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            if command.startswith("DATA"):
                self.wfile.write(b"354 go on\r\n")
                body = b"".join(iter(self.rfile.readline, b".\r\n"))
                self.server.messages.append(body.decode())
                self.wfile.write(b"250 queued\r\n")
            elif command.startswith("QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f'{{"conn_type": "smtp", "host": "127.0.0.1", "port": {port}, "extra": '
        '{"disable_ssl": true, "disable_tls": true, "from_email": "airflow@clinic.example"}}',
    )
    yield server.messages
    server.shutdown()
    server.server_close()


def test_without_settings_a_failure_is_only_logged():
    assert alerts.failure_callbacks({}) == [alerts.log_failure]


def test_a_failed_run_is_emailed(smtp):
    callbacks = alerts.failure_callbacks(
        {alerts.EMAIL: "oncall@clinic.example, lead@clinic.example"}
    )
    assert callbacks[0] is alerts.log_failure
    context = {
        "dag": DAG("nightly_medical_transcription", schedule=None),
        "dag_run": SimpleNamespace(run_id="scheduled__2026-11-25T02:00:00+00:00"),
        "reason": "task_failure",
    }
    for callback in callbacks:
        callback(context)
    [raw] = smtp
    message = email.message_from_string(raw)
    assert "oncall@clinic.example" in message["To"] and "lead@clinic.example" in message["To"]
    assert message["Subject"] == "Transcription run scheduled__2026-11-25T02:00:00+00:00 failed"
    body = "".join(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/html"
    )
    assert "failed: task_failure" in body and "run report" in body
