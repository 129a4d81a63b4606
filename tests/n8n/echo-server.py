#!/usr/bin/env python3
"""A loopback HTTP endpoint for n8n's HTTP Request node (tests/n8n/run and
scripts/bench/n8n.sh): answers every GET with JSON holding the path and the X-Hlt-Token
header it was sent, and appends that header to LOG. Binds 127.0.0.1 on a free port and
writes the port to PORTFILE once it listens.

  echo-server.py PORTFILE LOG
"""
import http.server
import json
import os
import sys

portfile, logfile = sys.argv[1], sys.argv[2]
log = open(logfile, "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        token = self.headers.get("X-Hlt-Token")
        log.write(f"{token}\n")
        body = json.dumps({"path": self.path, "token": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(f"{srv.server_address[1]}\n")
os.replace(portfile + ".tmp", portfile)
srv.serve_forever()
