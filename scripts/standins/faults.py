"""`standin faults`: AWS fault-injecting proxy in front of moto.

    scripts/standin faults --upstream URL [--throttle P] [--error5xx P] [--drop P]
        [--error CODE:STATUS[:P]] [--latency-ms MIN[,MAX]] [--seed N] [--only-services ec2,autoscaling]
        [--only-actions CreateTags,...] [--aws-rates] [--host 127.0.0.1] [--port 0] [--no-stdin-watch] [-v]

Every request is forwarded untouched (method, path, query, all headers including
Host, body; chunked request bodies are de-chunked and sent with Content-Length)
to the upstream, and the answer is streamed back — unless, BEFORE forwarding,
a fault is drawn (in this order: drop, rate, throttle, error5xx, error; latency is
slept first for every proxied request). A faulted request never reaches the upstream.

--aws-rates meters EC2 and Auto Scaling with AWS's token buckets (EC2's
published sizes and refill rates per action category, and buckets of the same
shape for Auto Scaling, whose sizes AWS does not publish: see AwsRates), shared
by every client of the proxy; a request finding its bucket empty gets the
service's throttling error (fault kind "rate"), before any random fault is drawn.

Service = SigV4 credential scope (Credential=AKID/date/region/SERVICE/aws4_request),
action = form/query `Action=` or the X-Amz-Target header's operation.
Faults use each service's error shape:
  ec2            503 RequestLimitExceeded / 500 InternalError  (<Response><Errors>...)
  autoscaling, elasticloadbalancing, sts, iam
                 400 Throttling / 500 InternalFailure (<ErrorResponse xmlns=ns>...)
  ssm (JSON 1.1) 400 {"__type":"ThrottlingException"} / 500 {"__type":"InternalServerError"}
  drop           request read, socket closed, no response.
  error          a given code and HTTP status in the same shape (Type Sender below 500,
                 Receiver from 500), e.g. Auto Scaling's ScalingActivityInProgress:400 or
                 ResourceContention:500; `times` answers only that many calls with it.
--only-services / --only-actions restrict fault injection (not counting) to those.

Control (not forwarded), under /__kiln_faults/:
  GET  stats   {"calls": {svc: {action: n}}, "forwarded": {...},
                "faults": {"throttle": {svc: {action: n}}, "error5xx": ..., "drop": ..., "rate": ...},
                "config": {...}, "buckets": {"svc:bucket": tokens left} (with aws_rates)}
  POST config  JSON with any of: throttle, error5xx, drop, latency_ms ([min,max] or n),
               seed, only_services (list|null), only_actions (list|null),
               aws_rates (true: fresh, full buckets; false: no metering),
               error ({"code", "status", "p" (default 1), "times" (default: no limit)} | null)
  POST reset   zero all counters

Ready line: {"ready", "name": "faults", "url", "host", "port", "upstream", "pid"}
"""
import argparse
import http.client
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import common

log = logging.getLogger("standin.faults")

NAMESPACES = {
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}
ELB_CLASSIC_NS = "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
CRED_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
FAULT_KINDS = ("throttle", "error5xx", "drop", "error")
# Refused by AwsRates' token buckets; answered as the service's throttling error.
RATE = "rate"

# Messages AWS documents for the codes the tests inject; another code gets a
# neutral message. Auto Scaling API Reference, "Errors" of each action (e.g.
# API_UpdateAutoScalingGroup.html, API_TerminateInstanceInAutoScalingGroup.html).
KNOWN_MESSAGES = {
    "ScalingActivityInProgress": "The operation can't be performed because there are scaling activities "
                                 "in progress.",
    "ResourceContention": "You already have a pending update to an Amazon EC2 Auto Scaling resource "
                          "(for example, an Auto Scaling group, instance, or load balancer).",
}


def parse_error_spec(spec):
    """`CODE:STATUS[:P]` (the command line) or a dict (the control API) to the `error` setting."""
    if spec is None:
        return None
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError("--error wants CODE:STATUS[:P], got %r" % spec)
        spec = {"code": parts[0], "status": parts[1]}
        if len(parts) == 3:
            spec["p"] = parts[2]
    if not isinstance(spec, dict) or not spec.get("code"):
        raise ValueError("error wants {code, status[, p, times]}, got %r" % (spec,))
    status = int(spec.get("status", 400))
    if not 400 <= status <= 599:
        raise ValueError("error status %d is not an HTTP error status" % status)
    times = spec.get("times")
    return {"code": str(spec["code"]), "status": status, "p": float(spec.get("p", 1.0)),
            "times": None if times is None else int(times)}


def identify(headers, path_query, body):
    """Return (service, action, version) for an AWS request."""
    service = "unknown"
    m = CRED_RE.search(headers.get("Authorization", "") or "")
    if m:
        service = m.group(4)
    else:
        q = parse_qs(urlsplit(path_query).query)
        cred = (q.get("X-Amz-Credential") or [""])[0]
        parts = cred.split("/")
        if len(parts) == 5:
            service = parts[3]
    action, version = "unknown", None
    target = headers.get("X-Amz-Target")
    if target:
        action = target.rsplit(".", 1)[-1]
    else:
        params = parse_qs(urlsplit(path_query).query)
        ctype = (headers.get("Content-Type") or "").lower()
        if body and ("x-www-form-urlencoded" in ctype or not ctype):
            try:
                params.update(parse_qs(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        if "Action" in params:
            action = params["Action"][0]
        version = (params.get("Version") or [None])[0]
    return service, action, version


def request_params(headers, path_query, body):
    """The query-protocol parameters of a request (query string and form body); {} for JSON-protocol ones."""
    params = parse_qs(urlsplit(path_query).query, keep_blank_values=True)
    ctype = (headers.get("Content-Type") or "").lower()
    if body and not headers.get("X-Amz-Target") and ("x-www-form-urlencoded" in ctype or not ctype):
        try:
            params.update(parse_qs(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            pass
    return params


def fault_response(kind, service, version=None, json_protocol=False, error=None):
    """(status, headers, body bytes) of an injected throttle/error5xx/error in the service's shape."""
    rid = str(uuid.uuid4())
    if kind == RATE:
        kind = "throttle"  # the same error as a random throttle: AWS has one throttling error per service
    given = None
    if kind == "error":
        given = (error["status"], error["code"],
                 KNOWN_MESSAGES.get(error["code"], "Injected by the fault proxy."))
    if service == "ssm" or json_protocol:
        if given:
            status, body = given[0], {"__type": given[1], "message": given[2]}
        elif kind == "throttle":
            status, body = 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        else:
            status, body = 500, {"__type": "InternalServerError",
                                 "message": "An internal error occurred."}
        return status, {"Content-Type": "application/x-amz-json-1.1",
                        "x-amzn-RequestId": rid}, json.dumps(body).encode()
    if service == "ec2":
        if given:
            status, code, msg = given
        elif kind == "throttle":
            status, code, msg = 503, "RequestLimitExceeded", "Request limit exceeded."
        else:
            status, code, msg = 500, "InternalError", "An internal error has occurred"
        body = ('<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code>'
                '<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>'
                % (code, msg, rid))
    else:
        ns = NAMESPACES.get(service)
        if service == "elasticloadbalancing" and version == "2012-06-01":
            ns = ELB_CLASSIC_NS
        if given:
            status, code, msg = given
            typ = "Sender" if status < 500 else "Receiver"
        elif kind == "throttle":
            status, typ, code, msg = 400, "Sender", "Throttling", "Rate exceeded"
        else:
            status, typ, code, msg = 500, "Receiver", "InternalFailure", \
                "An internal error occurred."
        body = ('<ErrorResponse%s><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message>'
                '</Error><RequestId>%s</RequestId></ErrorResponse>'
                % (' xmlns="%s"' % ns if ns else "", typ, code, msg, rid))
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, body.encode()


def _bump(d, service, action):
    d.setdefault(service, {}).setdefault(action, 0)
    d[service][action] += 1


class State:
    def __init__(self, upstream, throttle=0.0, error5xx=0.0, drop=0.0, latency_ms=(0, 0),
                 seed=None, only_services=None, only_actions=None, aws_rates=False, clock=time.monotonic,
                 error=None):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.cfg = {}
        self.rng = random.Random(seed)
        self.clock = clock
        self.rates = None
        self.configure(dict(throttle=throttle, error5xx=error5xx, drop=drop, latency_ms=latency_ms,
                            seed=seed, only_services=only_services, only_actions=only_actions,
                            aws_rates=aws_rates, error=error))
        self.reset()

    def reset(self):
        with self.lock:
            self.calls, self.forwarded = {}, {}
            self.faults = {k: {} for k in FAULT_KINDS}  # and RATE once a bucket refused a request

    def configure(self, new):
        with self.lock:
            for k in ("throttle", "error5xx", "drop"):
                if k in new:
                    self.cfg[k] = float(new[k])
            if "latency_ms" in new:
                v = new["latency_ms"]
                if isinstance(v, str):
                    v = [float(x) for x in v.split(",")]
                if isinstance(v, (int, float)):
                    v = [v, v]
                v = list(v) + list(v)[:1] if len(v) == 1 else list(v)
                self.cfg["latency_ms"] = [float(v[0]), float(v[1])]
            for k in ("only_services", "only_actions"):
                if k in new:
                    v = new[k]
                    if isinstance(v, str):
                        v = [x for x in v.split(",") if x]
                    self.cfg[k] = list(v) if v else None
            if "aws_rates" in new:
                self.cfg["aws_rates"] = bool(new["aws_rates"])
                self.rates = AwsRates(self.clock) if new["aws_rates"] else None
            if "error" in new or "error" not in self.cfg:
                self.cfg["error"] = parse_error_spec(new.get("error"))
            if "seed" in new:
                self.cfg["seed"] = new["seed"]
                if new["seed"] is not None:
                    self.rng.seed(new["seed"])

    def decide(self, service, action, params=None):
        """Count the call; return (fault kind or None, latency seconds, the `error` setting drawn). `params`: the
        request's query-protocol parameters, which decide EC2's bucket (filtered or not) and its instance tokens."""
        with self.lock:
            _bump(self.calls, service, action)
            c = self.cfg
            lo, hi = c["latency_ms"]
            latency = (self.rng.uniform(lo, hi) if hi > lo else lo) / 1000.0
            eligible = ((not c["only_services"] or service in c["only_services"]) and
                        (not c["only_actions"] or action in c["only_actions"]))
            kind = None
            drop = c["drop"]
            if eligible and drop > 0 and (drop >= 1 or self.rng.random() < drop):
                kind = "drop"
            elif self.rates is not None and not self.rates.admit(service, action, params or {}):
                kind = RATE
            elif eligible:
                for k in ("throttle", "error5xx", "error"):
                    if k == "error":
                        e = c["error"]
                        p = e["p"] if e and e["times"] != 0 else 0
                    else:
                        p = c[k]
                    if p > 0 and (p >= 1 or self.rng.random() < p):
                        kind = k
                        break
            if kind == "error" and c["error"]["times"] is not None:
                c["error"]["times"] -= 1
            if kind:
                _bump(self.faults.setdefault(kind, {}), service, action)
            return kind, latency, dict(c["error"]) if kind == "error" else None

    def count_forwarded(self, service, action):
        with self.lock:
            _bump(self.forwarded, service, action)

    def stats(self):
        with self.lock:
            stats = {"calls": self.calls, "forwarded": self.forwarded, "faults": self.faults, "config": self.cfg}
            if self.rates is not None:
                stats["buckets"] = self.rates.levels()
            return json.loads(json.dumps(stats))


# --------------------------------------------------------------------------
# AWS's own rates: token buckets (`--aws-rates`, or POST config {"aws_rates": true}).
#
# EC2's request and resource token buckets, from the EC2 API reference, "Request throttling for the Amazon EC2
# API" (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, formerly
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/throttling.html), per account and Region:
#   - each API action has a bucket of its own, of its category's size: a request takes one token, and a request
#     finding its bucket empty fails with RequestLimitExceeded (the other actions' buckets are untouched);
#   - a bucket refills continuously at its rate, up to its maximum (an empty 100/20 bucket is full after 5 s);
#   - categories (maximum capacity / refill per second): non-mutating (Describe*, List*, Search*, Get*) 100 / 20;
#     unfiltered and unpaginated non-mutating (the seven actions in EC2_UNFILTERED, asked for with neither a
#     filter nor pagination) 50 / 10; mutating 50 / 5; resource-intensive (EC2_RESOURCE_INTENSIVE) 50 / 5;
#     "uncategorized" actions with buckets of their own (EC2_UNCATEGORIZED, the ones a deploy calls);
#   - RunInstances, TerminateInstances, StartInstances and StopInstances also take one token per instance from a
#     resource bucket (1000 / 2, 1000 / 20, 1000 / 2, 1000 / 20): a request needs both buckets.
# Auto Scaling throttles too (its error is Throttling, 400) but AWS publishes no bucket sizes for it: this model
# gives it buckets of EC2's shape (Describe* 100 / 20, everything else 50 / 5), which is a guess, not AWS's.
# Other services pass through unmetered (random throttling still applies to them).
EC2_UNFILTERED = frozenset((
    "DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces", "DescribeSecurityGroups",
    "DescribeSnapshots", "DescribeSpotInstanceRequests", "DescribeVolumes"))
EC2_RESOURCE_INTENSIVE = frozenset((
    "AcceptVpcPeeringConnection", "AuthorizeSecurityGroupIngress", "CancelSpotInstanceRequests", "CreateKeyPair",
    "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection", "RejectVpcPeeringConnection",
    "RevokeSecurityGroupIngress", "RequestSpotInstances"))
EC2_UNCATEGORIZED = {
    "CopyImage": (100, 1), "CreateLaunchTemplateVersion": (100, 5), "CreateTags": (100, 10),
    "DeleteTags": (100, 10), "DeregisterImage": (100, 5), "ModifyImageAttribute": (100, 5),
    "ModifyLaunchTemplate": (100, 5), "CreateSnapshot": (100, 5), "DeleteSnapshot": (100, 5),
    "ModifySnapshotAttribute": (100, 5), "CreateVolume": (100, 5), "DeleteVolume": (100, 5)}
EC2_RESOURCE = {"RunInstances": (1000, 2), "TerminateInstances": (1000, 20), "StartInstances": (1000, 2),
                "StopInstances": (1000, 20)}
NON_MUTATING_PREFIXES = ("Describe", "List", "Search", "Get")


class TokenBucket:
    """One bucket: `capacity` tokens, refilled at `rate` a second, starting full; `clock` gives seconds."""

    def __init__(self, capacity, rate, clock):
        self.capacity, self.rate, self.clock = float(capacity), float(rate), clock
        self.tokens, self.stamp = float(capacity), clock()

    def available(self):
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens


def ec2_request_bucket(action, params):
    """(bucket name, capacity, rate) of an EC2 action's request bucket."""
    if action in EC2_UNCATEGORIZED:
        return (action,) + EC2_UNCATEGORIZED[action]
    if action in EC2_RESOURCE_INTENSIVE:
        return (action, 50, 5)
    if action.startswith(NON_MUTATING_PREFIXES):
        # "without specifying either pagination or a filter": no Filter.N, MaxResults or NextToken.
        paged = any(k.startswith("Filter.") or k in ("MaxResults", "NextToken") for k in params)
        if action in EC2_UNFILTERED and not paged:
            return (action + " (unfiltered)", 50, 10)
        return (action, 100, 20)
    return (action, 50, 5)


def instance_count(action, params):
    """Resource tokens a request takes: RunInstances' MaxCount, else the InstanceId.N it names."""
    if action == "RunInstances":
        try:
            return max(1, int((params.get("MaxCount") or ["1"])[0]))
        except ValueError:
            return 1
    return max(1, sum(1 for k in params if k.startswith("InstanceId.")))


class AwsRates:
    """EC2's published buckets and Auto Scaling's of the same shape (see above), shared by every client of the
    proxy, as AWS's are shared by every caller in an account and Region."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.buckets = {}

    def _bucket(self, service, name, capacity, rate):
        key = (service, name)
        if key not in self.buckets:
            self.buckets[key] = TokenBucket(capacity, rate, self.clock)
        return self.buckets[key]

    def needs(self, service, action, params):
        """[(bucket, tokens)] the request takes, or [] when the service is not metered."""
        if service == "ec2":
            wanted = [(self._bucket(service, *ec2_request_bucket(action, params)), 1)]
            if action in EC2_RESOURCE:
                wanted.append((self._bucket(service, action + " (instances)", *EC2_RESOURCE[action]),
                               instance_count(action, params)))
            return wanted
        if service == "autoscaling":
            capacity, rate = (100, 20) if action.startswith(NON_MUTATING_PREFIXES) else (50, 5)
            return [(self._bucket(service, action, capacity, rate), 1)]
        return []

    def admit(self, service, action, params):
        """True and the tokens taken when every bucket the request needs holds enough; else False, none taken
        (a throttled request costs nothing: AWS refuses it before it runs)."""
        wanted = self.needs(service, action, params)
        # 1e-9: a token due at exactly this instant is there, whatever the clock's float rounding.
        if any(bucket.available() + 1e-9 < tokens for bucket, tokens in wanted):
            return False
        for bucket, tokens in wanted:
            bucket.tokens -= tokens
        return True

    def levels(self):
        return {"%s:%s" % key: round(bucket.available(), 2) for key, bucket in sorted(self.buckets.items())}


def read_body(handler):
    """Read the request body (Content-Length or chunked) fully."""
    te = (handler.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        out = []
        while True:
            line = handler.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            out.append(handler.rfile.read(size))
            handler.rfile.readline(3)
        return b"".join(out)
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


def make_handler(state):
    up = urlsplit(state.upstream)
    up_host, up_port = up.hostname, up.port or 80

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug(fmt, *args)

        def _send(self, status, headers, body):
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _control(self, body):
            what = self.path.split("?")[0][len("/__kiln_faults/"):].strip("/")
            if what == "stats" and self.command == "GET":
                return self._send(200, {"Content-Type": "application/json"},
                                  json.dumps(state.stats()).encode())
            if what == "config" and self.command == "POST":
                try:
                    state.configure(json.loads(body or b"{}"))
                except (ValueError, TypeError, KeyError) as e:
                    return self._send(400, {"Content-Type": "application/json"},
                                      json.dumps({"error": str(e)}).encode())
                return self._send(200, {"Content-Type": "application/json"},
                                  json.dumps(state.stats()["config"]).encode())
            if what == "config" and self.command == "GET":
                return self._send(200, {"Content-Type": "application/json"},
                                  json.dumps(state.stats()["config"]).encode())
            if what == "reset" and self.command == "POST":
                state.reset()
                return self._send(200, {"Content-Type": "application/json"}, b'{"status": "ok"}')
            return self._send(404, {"Content-Type": "application/json"}, b'{"error": "not found"}')

        def _drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _proxy(self):
            body = read_body(self)
            if self.path.startswith("/__kiln_faults/"):
                return self._control(body)
            service, action, version = identify(self.headers, self.path, body)
            kind, latency, error = state.decide(service, action, request_params(self.headers, self.path, body))
            if latency:
                time.sleep(latency)
            if kind == "drop":
                log.info("drop %s %s", service, action)
                return self._drop()
            if kind:
                log.info("%s %s %s", kind, service, action)
                json_proto = bool(self.headers.get("X-Amz-Target")) and "json" in \
                    (self.headers.get("Content-Type") or "")
                return self._send(*fault_response(kind, service, version, json_proto, error))
            state.count_forwarded(service, action)
            conn = http.client.HTTPConnection(up_host, up_port, timeout=300)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                        continue
                    conn.putheader(k, v)
                if body or self.command in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                for k, v in resp.getheaders():
                    if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                        continue
                    self.send_header(k, v)
                no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
                if length is not None:
                    self.send_header("Content-Length", length)
                elif not no_body:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if no_body:
                    return
                while True:
                    chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                    if not chunk:
                        break
                    if length is None:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.wfile.write(chunk)
                if length is None:
                    self.wfile.write(b"0\r\n\r\n")
            except (OSError, http.client.HTTPException) as e:
                log.warning("upstream error for %s %s: %s", service, action, e)
                self.close_connection = True
                try:
                    self._send(502, {"Content-Type": "text/plain"}, b"bad gateway\n")
                except OSError:
                    pass
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy

    return Proxy


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        log.debug("error serving %s", client_address, exc_info=True)


def main(argv):
    p = argparse.ArgumentParser(prog="standin faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    p.add_argument("--upstream", required=True, help="moto URL")
    p.add_argument("--throttle", type=float, default=0.0)
    p.add_argument("--error5xx", type=float, default=0.0)
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--error", default=None, help="CODE:STATUS[:P] answered instead of forwarding")
    p.add_argument("--latency-ms", default="0", help="MIN[,MAX] milliseconds slept before forwarding")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--only-services", default=None)
    p.add_argument("--only-actions", default=None)
    p.add_argument("--aws-rates", action="store_true",
                   help="meter EC2 and Auto Scaling with AWS's token buckets (see AwsRates)")
    a = p.parse_args(argv)
    common.setup_logging("faults", a.verbose)
    common.check_loopback(a.upstream)
    common.check_loopback(a.host)
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)
    state = State(a.upstream.rstrip("/"), a.throttle, a.error5xx, a.drop, a.latency_ms, a.seed,
                  a.only_services, a.only_actions, a.aws_rates, error=parse_error_spec(a.error))
    srv = _Server((a.host, a.port), make_handler(state))
    threading.Thread(target=srv.serve_forever, name="proxy", daemon=True).start()
    host, port = srv.server_address[:2]
    common.announce("faults", url="http://%s:%d" % (host, port), host=host, port=port,
                    upstream=state.upstream)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    srv.shutdown()
    srv.server_close()
    return 0
