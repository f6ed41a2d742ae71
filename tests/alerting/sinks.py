"""Local alert receivers for tests: an SMTP sink (a small RFC 5321 server, enough for smtplib) and a webhook
receiver (http.server), each in a background thread on a free 127.0.0.1 port, recording what arrived."""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    text: str


@dataclass
class SmtpSink:
    """An SMTP server that accepts every message and keeps it (no TLS, no auth: the connection disables both)."""

    messages: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            def handle(self) -> None:
                self.reply("220 sink ESMTP")
                sender, rcpts = "", []
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    cmd = raw.decode("utf-8", "replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                    elif verb == "HELO":
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        sender, rcpts = cmd.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with .")
                        lines = []
                        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            lines.append(line[1:] if line.startswith(b"..") else line)
                        msg = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                        parts = [p.get_content() for p in msg.walk() if p.get_content_maintype() == "text"]
                        sink.messages.append(Mail(sender, list(rcpts), str(msg["Subject"]), "\n".join(parts)))
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class WebhookReceiver:
    """An HTTP server recording every JSON POST (and its headers)."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                          "json": json.loads(body or b"null")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alert_connection_env(smtp: SmtpSink, webhook: WebhookReceiver, token: str = "hook-token-1") -> dict[str, str]:
    """AIRFLOW_CONN_* variables pointing the alert connections at the sinks."""
    return {
        "AIRFLOW_CONN_CATALOG_SYNC_ALERT_SMTP": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
            "extra": {"from_email": "catalog-sync@example.com", "to": "oncall@example.com, merch@example.com",
                      "disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1}}),
        "AIRFLOW_CONN_CATALOG_SYNC_ALERT_WEBHOOK": json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": webhook.port, "schema": "http",
            "password": token, "extra": {"endpoint": "/hooks/catalog-sync"}}),
    }
