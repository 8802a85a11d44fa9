import io
import json
import os
import subprocess
import tarfile
import urllib.error
import urllib.request

import pytest

from standins.harness import running

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false",
    "SSH_ASKPASS": "/bin/false", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "http_proxy": "", "https_proxy": "", "HTTP_PROXY": "", "HTTPS_PROXY": "",
}


def git(*args, cwd=None, home=None, check=True):
    env = dict(os.environ, **GIT_ENV)
    env["HOME"] = str(home or cwd or "/tmp")
    return subprocess.run(["git", "-c", "credential.helper=", "-c", "init.defaultBranch=main"] + list(args),
                          cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, check=check)


@pytest.fixture
def gitroot(tmp_path):
    root = tmp_path / "root"
    (root / "group").mkdir(parents=True)
    git("init", "--bare", "-q", str(root / "group" / "app.git"), home=tmp_path)
    work = tmp_path / "seed"
    git("init", "-q", str(work), home=tmp_path)
    (work / "README").write_text("hello kiln\n")
    git("add", "README", cwd=work, home=tmp_path)
    git("commit", "-q", "-m", "first", cwd=work, home=tmp_path)
    git("push", "-q", str(root / "group" / "app.git"), "HEAD:refs/heads/main", cwd=work, home=tmp_path)
    sha = git("rev-parse", "HEAD", cwd=work, home=tmp_path).stdout.decode().strip()
    return tmp_path, root, sha


def stats(url):
    with urllib.request.urlopen(url + "/__kiln_git/stats", timeout=5) as r:
        return json.loads(r.read())


def test_clone_auth_push_chunked_and_archive(gitroot):
    tmp, root, sha = gitroot
    with running("git", "--root", root, "--user", "kiln", "--password", "s3cret") as g:
        base = g["url"].replace("http://", "http://kiln:s3cret@") + "/group/app.git"
        git("clone", "-q", base, str(tmp / "c1"), home=tmp)
        assert (tmp / "c1" / "README").read_text() == "hello kiln\n"

        bad = g["url"].replace("http://", "http://kiln:wrong@") + "/group/app.git"
        r = git("clone", "-q", bad, str(tmp / "c2"), home=tmp, check=False)
        assert r.returncode != 0 and (b"401" in r.stderr or b"Authentication failed" in r.stderr), r.stderr
        req = urllib.request.Request(g["url"] + "/group/app.git/info/refs?service=git-upload-pack")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 401 and e.value.headers["WWW-Authenticate"] == 'Basic realm="kiln"'

        # A push bigger than http.postBuffer goes chunked.
        c1 = tmp / "c1"
        (c1 / "big.bin").write_bytes(os.urandom(300_000))
        git("add", "big.bin", cwd=c1, home=tmp)
        git("commit", "-q", "-m", "big", cwd=c1, home=tmp)
        git("-c", "http.postBuffer=65536", "push", "-q", "origin", "HEAD:main", cwd=c1, home=tmp)
        new_sha = git("rev-parse", "HEAD", cwd=c1, home=tmp).stdout.decode().strip()
        assert git("rev-parse", "main", cwd=root / "group" / "app.git", home=tmp).stdout.decode().strip() == new_sha
        s = stats(g["url"])
        assert s["request_encodings"].get("chunked", 0) >= 1, s
        # git probes with a tiny POST before a chunked one, so 2 receive-pack POSTs
        assert s["requests"]["receive_pack"] >= 1 and s["requests"]["unauthorized"] >= 1

        # A fresh clone of the bigger repository (protocol v2 via Git-Protocol header)
        git("-c", "protocol.version=2", "clone", "-q", base, str(tmp / "c3"), home=tmp)
        assert (tmp / "c3" / "big.bin").read_bytes() == (c1 / "big.bin").read_bytes()

        # GitLab archive API
        for pid in ("group%2Fapp", "1"):
            url = "%s/api/v4/projects/%s/repository/archive.tar.gz?sha=%s" % (g["url"], pid, sha)
            req = urllib.request.Request(url, headers={"JOB-TOKEN": "s3cret"})
            with urllib.request.urlopen(req, timeout=10) as r:
                data = r.read()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
                names = t.getnames()
                readme = [n for n in names if n.endswith("/README")][0]
                assert t.extractfile(readme).read() == b"hello kiln\n"
                assert not any(n.endswith("big.bin") for n in names)  # that is the old commit
        url = "%s/api/v4/projects/group%%2Fapp/repository/archive.tar.gz?sha=%s" % (g["url"], sha)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url, headers={"JOB-TOKEN": "nope"}), timeout=5)
        assert e.value.code == 401
        url404 = url.replace(sha, "0" * 40)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(url404, headers={"JOB-TOKEN": "s3cret"}), timeout=5)
        assert e.value.code == 404
        s = stats(g["url"])
        assert s["requests"]["archive"] == 2 and s["bytes_out"]["archive"] > 0


def test_gzip_chunked_upload_pack_post(gitroot):
    import base64
    import gzip
    import http.client
    tmp, root, sha = gitroot
    with running("git", "--root", root, "--user", "u", "--password", "p") as g:
        want = b"want %s multi_ack_detailed side-band-64k ofs-delta\n" % sha.encode()
        body = b"%04x%s0000%04x%s" % (len(want) + 4, want, len(b"done\n") + 4, b"done\n")
        gz = gzip.compress(body)
        conn = http.client.HTTPConnection(g["host"], g["port"], timeout=10)
        conn.putrequest("POST", "/group/app.git/git-upload-pack")
        conn.putheader("Authorization", "Basic " + base64.b64encode(b"u:p").decode())
        conn.putheader("Content-Type", "application/x-git-upload-pack-request")
        conn.putheader("Accept", "application/x-git-upload-pack-result")
        conn.putheader("Content-Encoding", "gzip")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        half = len(gz) // 2
        for part in (gz[:half], gz[half:]):
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        data = r.read()
        conn.close()
        assert r.status == 200 and r.getheader("Content-Type") == "application/x-git-upload-pack-result"
        assert b"NAK" in data[:16] and b"PACK" in data
        s = stats(g["url"])
        assert s["request_encodings"] == {"chunked": 1, "gzip": 1}


def test_stall_cuts_the_answer_mid_body_and_holds_the_connection(gitroot):
    tmp, root, sha = gitroot
    with running("git", "--root", root, "--user", "kiln", "--password", "s3cret",
                 "--stall", "archive=100", "--stall", "upload_pack=200") as g:
        req = urllib.request.Request(
            g["url"] + "/api/v4/projects/group%2Fapp/repository/archive.tar.gz?sha=" + sha,
            headers={"JOB-TOKEN": "s3cret"})
        received = b""
        with urllib.request.urlopen(req, timeout=2) as r:
            assert r.status == 200
            with pytest.raises(TimeoutError):
                while True:
                    chunk = r.read1(1 << 16)
                    if not chunk:
                        break
                    received += chunk
        assert len(received) == 100

        # git itself gives up on the stalled pack (its own low-speed limit).
        base = g["url"].replace("http://", "http://kiln:s3cret@") + "/group/app.git"
        r = git("-c", "http.lowSpeedLimit=1", "-c", "http.lowSpeedTime=2", "clone", "-q", base,
                str(tmp / "stalled"), home=tmp, check=False)
        assert r.returncode != 0, r.stderr
        assert stats(g["url"])["stalled"] == {"archive": 1, "upload_pack": 1}


def test_stall_rejects_an_unknown_kind(gitroot):
    _, root, _ = gitroot
    r = subprocess.run([os.path.join(os.path.dirname(__file__), "..", "..", "standin"), "git", "--root", str(root),
                        "--stall", "info_refs=10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 2 and b"--stall info_refs=10" in r.stderr
