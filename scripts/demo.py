"""The demo's moving parts (run through scripts/demo, which installs them first)."""

import base64
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BROKER = ROOT / "scripts" / "broker"
SLUICE = Path(os.environ.get("SLUICE_DEMO_BIN", ROOT / "target" / "demo" / "sluice"))
ORDERS = 12
arrived = []


def took(since):
    """Seconds since the monotonic time `since`, for the step lines."""
    return f"{time.monotonic() - since:.1f} s"


def total():
    """The demo's whole run so far (scripts/demo sets its start), as minutes and seconds."""
    started = os.environ.get("SLUICE_DEMO_STARTED")
    if started is None:
        return ""
    s = int(time.time()) - int(started)
    return f" in {s // 60} min {s % 60} s"


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        rec = json.loads(body)
        key = base64.b64decode(rec["key"]).decode() if "key" in rec else None
        value = base64.b64decode(rec["value"]).decode() if rec.get("value") else None
        headers = [(k, bytes(b & 0xFF for b in v).decode(errors="replace"))
                   for h in rec["headers"] for k, v in h.items()]
        print(f"  received {rec['eventSourceKey']}@{rec['offset']}: key={key} value={value} "
              f"headers={headers}", flush=True)
        arrived.append(rec)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    broker_name = f"demo-{os.getpid()}"
    t = time.monotonic()
    out = subprocess.run([str(BROKER), "start", "--name", broker_name], check=True,
                         capture_output=True, text=True).stdout
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    bootstrap = info["BOOTSTRAP"]
    print(f"demo: broker: running at {bootstrap} ({took(t)})")
    sluice = None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    try:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/orders"
        print(f"demo: HTTP receiver at {url}")
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})  # must outlive the future
        admin.create_topics(
            [NewTopic("orders", num_partitions=3, replication_factor=1)])["orders"].result(30)
        pipe = json.loads((ROOT / "examples" / "orders-to-http.json").read_text())
        pipe["Source"] = f"smk://{bootstrap}"
        pipe["Target"] = url
        tmp = Path(tempfile.mkdtemp()) / "pipe.json"
        tmp.write_text(json.dumps(pipe, indent=2))
        print(f"demo: pipe: sluice run {tmp} (examples/orders-to-http.json with this broker and receiver)")
        t = time.monotonic()
        sluice = subprocess.Popen([str(SLUICE), "run", str(tmp)],
                                  env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
        for i in range(ORDERS):
            customer = f"customer-{i % 4}"
            producer.produce("orders", key=customer,
                             value=json.dumps({"id": f"o-{i}", "amount": 10 * i}),
                             headers=[("source", b"demo"), ("trace", f"t{i}".encode())])
        producer.flush(10)
        print(f"demo: pipe: produced {ORDERS} orders; waiting for them to arrive")
        deadline = time.monotonic() + 60
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.1)
        if arrived:
            # Mostly the consumer group join of a new pipe.
            print(f"demo: pipe: first order arrived {took(t)} after sluice started")
        first = time.monotonic()
        while len(arrived) < ORDERS and time.monotonic() < deadline:
            time.sleep(0.1)
        if len(arrived) < ORDERS:
            print(f"demo: only {len(arrived)} of {ORDERS} arrived", file=sys.stderr)
            return 1
        print(f"demo: records: all {ORDERS} orders arrived, in order within each partition, "
              f"{took(first)} after the first")
        return 0
    finally:
        if sluice is not None:
            sluice.terminate()
            sluice.wait(30)
        server.shutdown()
        subprocess.run([str(BROKER), "stop", "--name", broker_name])


if __name__ == "__main__":
    rc = main()
    if rc == 0:
        print(f"demo: done{total()}, everything it started stopped")
    sys.exit(rc)
