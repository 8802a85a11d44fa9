import http.client
import json
import time
import urllib.request

from standins.harness import running


def req(info, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(info["host"], info["port"], timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_http_fixture_endpoints():
    with running("http-fixture") as f:
        for n in (200, 201, 204, 404, 418, 500, 503):
            r, data = req(f, "GET", "/status/%d" % n)
            assert r.status == n
        r, data = req(f, "PUT", "/echo/x?a=1&b=two", body=b"hello", headers={"X-Kiln": "yes"})
        e = json.loads(data)
        assert e["method"] == "PUT" and e["path"] == "/echo/x" and e["query"] == "a=1&b=two"
        assert e["args"] == {"a": ["1"], "b": ["two"]} and e["body"] == "hello"
        assert ["X-Kiln", "yes"] in e["headers"]
        r, data = req(f, "POST", "/echo", body=b"\xff\x00")
        e = json.loads(data)
        assert e["body"] is None and e["body_base64"] == "/wA=" and e["body_length"] == 2
        t0 = time.monotonic()
        r, data = req(f, "GET", "/sleep/0.3")
        assert r.status == 200 and time.monotonic() - t0 >= 0.3
        r, data = req(f, "GET", "/headers?X-One=1&Retry-After=5")
        assert r.getheader("X-One") == "1" and r.getheader("Retry-After") == "5"
        r, data = req(f, "GET", "/bytes/100000")
        assert r.status == 200 and len(data) == 100000
        r, data = req(f, "GET", "/redirect?to=/status/201")
        assert r.status == 302 and r.getheader("Location") == "/status/201"
        with urllib.request.urlopen(f["url"] + "/redirect?to=/echo", timeout=5) as u:
            assert json.loads(u.read())["path"] == "/echo"
        # chunked request body
        c = http.client.HTTPConnection(f["host"], f["port"], timeout=10)
        c.request("POST", "/echo", body=iter([b"ab", b"cd"]), encode_chunked=True)
        e = json.loads(c.getresponse().read())
        c.close()
        assert e["body"] == "abcd" and e["chunked"] is True
