#!/usr/bin/env python3
"""Writes the workflows and the credential the n8n test and benchmark import, as n8n's
CLI takes them (import:workflow --separate, import:credentials):

  workflows.py DIR ECHO_URL TOKEN

Each workflow starts at a webhook (GET /webhook/<path>) and answers with the last
node's first item:
  hlt-code       Code: query.x doubled, and sha256 applied query.rounds times (default 1)
                 to x with require('crypto') (the runners' allow-list has it): CPU work
                 that shows in whichever process ran the code
  hlt-busy       Code: a busy loop of query.ms milliseconds (default ten minutes)
  hlt-transform  Code: 1,000 items made, then each transformed (a schedule's batch job)
  hlt-http       HTTP Request to ECHO_URL with the header credential (X-Hlt-Token: TOKEN)
"""
import json
import os
import sys

out, echo_url, token = sys.argv[1:4]
CRED = {"id": "hltHeaderCred001", "name": "hlt header"}


def webhook(path, n):
    return {
        "parameters": {"path": path, "responseMode": "lastNode", "options": {}},
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": [0, 0],
        "webhookId": f"00000000-0000-4000-9000-{n:012d}",
    }


def code(name, js, n, x=200):
    return {
        "parameters": {"jsCode": js},
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": name,
        "type": "n8n-nodes-base.code",
        "typeVersion": 2,
        "position": [x, 0],
    }


def chain(nodes):
    return {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in zip(nodes, nodes[1:])
    }


def workflow(wid, name, nodes):
    return {
        "id": wid,
        "name": name,
        "nodes": nodes,
        "connections": chain(nodes),
        "active": False,
        "settings": {"executionOrder": "v1"},
        "pinData": {},
    }


CODE = """
const crypto = require('crypto');
const { x, rounds = '1' } = $input.first().json.query;
let digest = String(x);
for (let i = 0; i < Number(rounds); i++) digest = crypto.createHash('sha256').update(digest).digest('hex');
return [{ json: { doubled: Number(x) * 2, rounds: Number(rounds), digest } }];
"""
BUSY = """
const ms = Number($input.first().json.query.ms ?? 600000);
const until = Date.now() + ms;
while (Date.now() < until) {}
return [{ json: { finished: true, ms } }];
"""
MAKE = """
const items = [];
for (let i = 0; i < 1000; i++) items.push({ json: { id: i, name: `item-${i}`, value: i * 3 } });
return items;
"""
TRANSFORM = """
const out = $input.all().map(({ json }) => ({
  json: { id: json.id, label: json.name.toUpperCase(), even: json.value % 2 === 0, value: json.value * 2 },
}));
out[0].json.count = out.length;
out[0].json.total = out.reduce((s, it) => s + it.json.value, 0);
return out;
"""

http = {
    "parameters": {
        "url": echo_url,
        "authentication": "genericCredentialType",
        "genericAuthType": "httpHeaderAuth",
        "options": {},
    },
    "id": "00000000-0000-4000-8000-000000000099",
    "name": "HTTP Request",
    "type": "n8n-nodes-base.httpRequest",
    "typeVersion": 4.2,
    "position": [200, 0],
    "credentials": {"httpHeaderAuth": CRED},
}

flows = [
    workflow("hltCode000000001", "hlt code", [webhook("hlt-code", 1), code("Code", CODE, 2)]),
    workflow("hltBusy000000001", "hlt busy", [webhook("hlt-busy", 3), code("Code", BUSY, 4)]),
    workflow(
        "hltTransform0001",
        "hlt transform",
        [webhook("hlt-transform", 5), code("Make", MAKE, 6), code("Transform", TRANSFORM, 7, 400)],
    ),
    workflow("hltHttp000000001", "hlt http", [webhook("hlt-http", 8), http]),
]
os.makedirs(os.path.join(out, "workflows"), exist_ok=True)
for f in flows:
    with open(os.path.join(out, "workflows", f["id"] + ".json"), "w") as fh:
        json.dump(f, fh, indent=1)
with open(os.path.join(out, "credentials.json"), "w") as fh:
    json.dump(
        [dict(CRED, type="httpHeaderAuth", data={"name": "X-Hlt-Token", "value": token})],
        fh,
        indent=1,
    )
print(" ".join(f["id"] for f in flows))
