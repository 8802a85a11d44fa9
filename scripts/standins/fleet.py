"""`standin fleet`: the fleet simulator — real HTTP health listeners on moto instances' 127.x addresses.

    scripts/standin fleet --endpoint URL [--region us-east-1] [--health-port PORT]
                          [--poll 0.2] [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

Polls DescribeInstances; every pending/running instance whose private IP is in
127.0.0.0/8 gets an HTTP server on (private_ip, health_port) answering every
path (GET/HEAD) per its AMI's tags (DescribeImages, cached):
  kiln:fleet-health       healthy (default) | never | flap
  kiln:fleet-boot-delay   seconds of 503 after the fleet first saw the instance (default 0)
  kiln:fleet-flap-period  flap: seconds per 200/503 phase after the delay (default 1)
  kiln:fleet-fail-probes  healthy: the probes, counted from 1 after the delay, answered 503 ("3" or "3,4"), so
                          that exactly one (or two in a row) of an otherwise healthy instance's checks fail
Body: {"instance_id", "image_id", "state", "healthy", "private_ip"}.
An instance that is gone or not pending/running loses its listener.

--health-port 0 (default) reserves a free port by keeping 127.0.0.1:PORT bound
for the whole lifetime, and uses that number on every instance address.

Control endpoint (url in ready line): GET /instances -> JSON list of
{instance_id, private_ip, image_id, health, serving_since, first_seen, state, healthy_now,
probes (answered after the delay), failed_probes (their numbers, of those answered 503 after the delay)}.

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment
(default "testing"). Against moto --verify-signatures N, every poll is an
action that counts towards N: give the fleet a real moto IAM key.

Ready line: {"ready", "name": "fleet", "url", "host", "port", "health_port", "pid"}
"""
import argparse
import ipaddress
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import common

log = logging.getLogger("standin.fleet")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
LISTENER_POLL = 0.5


class Behaviour:
    def __init__(self, health="healthy", boot_delay=0.0, flap_period=1.0, fail_probes=()):
        self.health = health
        self.boot_delay = boot_delay
        self.flap_period = flap_period if flap_period > 0 else 1.0
        self.fail_probes = frozenset(fail_probes)

    @classmethod
    def from_tags(cls, tags):
        t = {x["Key"]: x["Value"] for x in tags or []}

        def num(key, default):
            try:
                return float(t.get(key, default))
            except ValueError:
                return default
        health = t.get("kiln:fleet-health", "healthy")
        if health not in ("healthy", "never", "flap"):
            health = "healthy"
        fail_probes = {int(n) for n in t.get("kiln:fleet-fail-probes", "").split(",") if n.strip().isdigit()}
        return cls(health, num("kiln:fleet-boot-delay", 0.0), num("kiln:fleet-flap-period", 1.0), fail_probes)

    def answer(self, age, probe):
        """Whether the probe numbered `probe` (from 1, after the boot delay; None before it) passes."""
        return self.healthy_at(age) and probe not in self.fail_probes

    def healthy_at(self, age):
        if self.health == "never" or age < self.boot_delay:
            return False
        if self.health == "healthy":
            return True
        return int((age - self.boot_delay) // self.flap_period) % 2 == 0


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        log.debug("error serving %s", client_address, exc_info=True)


class InstanceListener:
    def __init__(self, inst, behaviour, port):
        self.instance_id = inst["InstanceId"]
        self.image_id = inst.get("ImageId")
        self.private_ip = inst["PrivateIpAddress"]
        self.state = inst["State"]["Name"]
        self.behaviour = behaviour
        self.first_seen = time.time()
        self._mono0 = time.monotonic()
        self.serving_since = None
        self.server = None
        # Probes past the boot delay, and the numbers of those answered 503: counted under a lock, since the
        # listener serves each request on its own thread.
        self._probes = 0
        self._failed_probes = []
        self._lock = threading.Lock()
        owner = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug("%s %s", owner.private_ip, fmt % args)

            def _answer(self, with_body):
                ok = owner.probe()
                body = json.dumps({"instance_id": owner.instance_id, "image_id": owner.image_id,
                                   "ami": owner.image_id, "state": owner.state,
                                   "private_ip": owner.private_ip, "healthy": ok,
                                   "health": owner.behaviour.health}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

        try:
            self.server = _Quiet((self.private_ip, port), H)
        except OSError as e:
            log.warning("cannot bind %s:%d for %s: %s", self.private_ip, port, self.instance_id, e)
            return
        self.serving_since = time.time()
        # serve_forever's poll interval only bounds how long shutdown() waits (a request is served as soon as it
        # comes); 0.5 s rather than 0.05 s keeps a fleet of hundreds of listeners from waking 20 times a second each.
        threading.Thread(target=self.server.serve_forever, args=(LISTENER_POLL,), name="health-" + self.instance_id,
                         daemon=True).start()
        log.info("serving health for %s on %s:%d (%s, delay %.1fs)", self.instance_id,
                 self.private_ip, port, behaviour.health, behaviour.boot_delay)

    def healthy_now(self):
        return self.behaviour.healthy_at(time.monotonic() - self._mono0)

    def probe(self):
        """One health probe's answer; counts it when it comes after the boot delay."""
        age = time.monotonic() - self._mono0
        if age < self.behaviour.boot_delay:
            return False
        with self._lock:
            self._probes += 1
            number = self._probes
            ok = self.behaviour.answer(age, number)
            if not ok:
                self._failed_probes.append(number)
        return ok

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            log.info("stopped health listener for %s (%s)", self.instance_id, self.private_ip)
            self.server = None

    def describe(self):
        return {"instance_id": self.instance_id, "private_ip": self.private_ip,
                "image_id": self.image_id, "health": self.behaviour.health,
                "state": self.state, "first_seen": self.first_seen,
                "serving_since": self.serving_since, "healthy_now": self.healthy_now(),
                "listening": self.server is not None, **self.probes()}

    def probes(self):
        with self._lock:
            return {"probes": self._probes, "failed_probes": list(self._failed_probes)}


class Fleet:
    def __init__(self, endpoint, region, health_port, poll):
        common.fake_aws_env()
        import os
        import boto3
        self.ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region,
                                aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
        self.health_port = health_port
        self.poll = poll
        self.listeners = {}
        self.ami_cache = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def behaviour_for(self, image_id):
        if image_id not in self.ami_cache:
            tags = []
            try:
                imgs = self.ec2.describe_images(ImageIds=[image_id])["Images"]
                if imgs:
                    tags = imgs[0].get("Tags", [])
            except Exception as e:  # unknown AMI: default behaviour
                log.debug("describe_images %s: %s", image_id, e)
            self.ami_cache[image_id] = Behaviour.from_tags(tags)
        return self.ami_cache[image_id]

    def sync_once(self):
        seen = {}
        pager = self.ec2.get_paginator("describe_instances")
        for page in pager.paginate(Filters=[{"Name": "instance-state-name",
                                             "Values": ["pending", "running"]}]):
            for r in page["Reservations"]:
                for i in r["Instances"]:
                    ip = i.get("PrivateIpAddress")
                    if i["State"]["Name"] not in ("pending", "running") or not ip:
                        continue
                    try:
                        if ipaddress.ip_address(ip) not in LOOPBACK:
                            continue
                    except ValueError:
                        continue
                    seen[i["InstanceId"]] = i
        with self.lock:
            # Gone instances' listeners close in parallel, each taking up to LISTENER_POLL: closed one after
            # another under the lock, 40 terminations held the control endpoint and the next poll for seconds.
            closing = {}
            for iid in list(self.listeners):
                if iid not in seen:
                    gone = self.listeners.pop(iid)
                    closer = threading.Thread(target=gone.close, name="close-" + iid, daemon=True)
                    closer.start()
                    closing[gone.private_ip] = closer
            for iid, inst in seen.items():
                l = self.listeners.get(iid)
                if l is None:
                    if inst.get("PrivateIpAddress") in closing:  # moto gave a released address again
                        closing[inst["PrivateIpAddress"]].join()
                    self.listeners[iid] = InstanceListener(inst, self.behaviour_for(inst.get("ImageId")),
                                                           self.health_port)
                else:
                    l.state = inst["State"]["Name"]

    def run(self):
        while not self.stop.is_set():
            try:
                self.sync_once()
            except Exception as e:
                log.warning("poll failed: %s", e)
            self.stop.wait(self.poll)

    def snapshot(self):
        with self.lock:
            return [l.describe() for l in self.listeners.values()]

    def close(self):
        self.stop.set()
        with self.lock:
            closers = [threading.Thread(target=l.close, daemon=True) for l in self.listeners.values()]
            for closer in closers:  # in parallel: each waits up to LISTENER_POLL
                closer.start()
            for closer in closers:
                closer.join()
            self.listeners.clear()


def main(argv):
    p = argparse.ArgumentParser(prog="standin fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    p.add_argument("--endpoint", required=True, help="moto URL")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--health-port", type=int, default=0)
    p.add_argument("--poll", type=float, default=0.2)
    a = p.parse_args(argv)
    common.setup_logging("fleet", a.verbose)
    common.check_loopback(a.endpoint)
    common.check_loopback(a.host)
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)

    reserve = None
    health_port = a.health_port
    if health_port == 0:
        reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        reserve.bind(("127.0.0.1", 0))
        health_port = reserve.getsockname()[1]

    fleet = Fleet(a.endpoint, a.region, health_port, a.poll)
    fleet.sync_once()  # first sight before announcing ready (raises if moto is unreachable)

    class Control(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            log.debug("control " + fmt, *args)

        def do_GET(self):
            if self.path.split("?")[0].rstrip("/") == "/instances":
                body, code = json.dumps(fleet.snapshot()).encode(), 200
            else:
                body, code = b'{"error": "not found"}', 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ctl = _Quiet((a.host, a.port), Control)
    threading.Thread(target=ctl.serve_forever, name="control", daemon=True).start()
    poller = threading.Thread(target=fleet.run, name="poll", daemon=True)
    poller.start()
    host, port = ctl.server_address[:2]
    common.announce("fleet", url="http://%s:%d" % (host, port), host=host, port=port,
                    health_port=health_port, endpoint=a.endpoint)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    fleet.close()
    poller.join(5)
    fleet.close()
    ctl.shutdown()
    ctl.server_close()
    if reserve:
        reserve.close()
    return 0
