"""A local OpenAI-compatible chat server on 127.0.0.1 for the endpoint backend tests.

``OpenAIServer(reply)`` serves ``POST /v1/chat/completions``; ``reply(body)`` returns the reply
text, or an ``(status, payload_bytes, headers)`` tuple to send an error or garbage as is. Every
request body is kept in ``server.bodies``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIServer:
    """Context manager running the server in a thread; ``base_url`` ends in ``/v1``."""

    def __init__(self, reply):
        self.reply = reply
        self.bodies = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}', {})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                answer = server.reply(body)
                if isinstance(answer, tuple):
                    self._send(*answer)
                    return
                payload = {"id": "cmpl-test", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def _send(self, status, payload, headers):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
