#!/usr/bin/env python3
"""A stand-in for Loki's push API, for benchmarks (not a test; Loki cannot be installed here).

  loki-stand-in.py PORT_FILE     listen on a free 127.0.0.1 port, write it to PORT_FILE

Follows the documented push contract like the test suite's receiver: POST
/loki/api/v1/push, Content-Type application/json, optional Content-Encoding gzip,
{"streams":[{"stream":{...},"values":[["<ns string>","<line>"],...]}]}; answers 204,
or 400 for a body Loki would refuse. Counts the entries it accepted (GET /count).
"""
import gzip
import http.server
import json
import sys
import threading

count = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200, str(count).encode())

    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/loki/api/v1/push" or self.headers.get("Content-Type") != "application/json":
            return self.answer(400, b"JSON pushes only\n")
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            n = 0
            for s in json.loads(body)["streams"]:
                assert s["stream"]
                for v in s["values"]:
                    int(v[0]) if isinstance(v[0], str) else 1 / 0
                    assert isinstance(v[1], str)
                    n += 1
        except Exception as e:  # noqa: BLE001 - any malformed body is a 400, as in Loki
            return self.answer(400, f"{e}\n".encode())
        with lock:
            count += n
        self.answer(204)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
