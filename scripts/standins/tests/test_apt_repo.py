"""The local package repository: what the set-up puts in it, and a real apt reading it through the stand-in."""
import importlib.machinery
import importlib.util
import os
import subprocess

from standins.harness import running

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _setup_apt_repo():
    path = os.path.join(REPO, "scripts", "setup-apt-repo")
    loader = importlib.machinery.SourceFileLoader("setup_apt_repo", path)
    spec = importlib.util.spec_from_loader("setup_apt_repo", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _deb(folder, name, version, payload):
    """A real (tiny) Debian package, built by dpkg-deb."""
    tree = os.path.join(folder, "%s-tree" % name)
    os.makedirs(os.path.join(tree, "DEBIAN"))
    os.makedirs(os.path.join(tree, "usr", "share", name))
    with open(os.path.join(tree, "usr", "share", name, "payload"), "w") as f:
        f.write(payload)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout
    with open(os.path.join(tree, "DEBIAN", "control"), "w") as f:
        f.write("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: Kiln <kiln@example.invalid>\n"
                "Description: a test package\n" % (name, version, arch.strip()))
    os.makedirs(os.path.join(folder, "pool"), exist_ok=True)
    deb = os.path.join(folder, "pool", "%s_%s.deb" % (name, version))
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, deb], check=True, capture_output=True)
    return deb


def test_the_playbooks_packages_are_what_their_apt_tasks_name():
    names = _setup_apt_repo().playbook_packages(REPO)
    # base.yml: its install task, Debian's AWS CLI (where no snapd runs), and the apt module's own need.
    for name in ("unattended-upgrades", "curl", "unzip", "jq", "awscli", "python3-apt"):
        assert name in names
    assert not [n for n in names if "{{" in n]


def test_only_the_machines_debian_entries_are_read(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# old style\ndeb http://mirror.example.invalid/debian bookworm main contrib\n"
        "deb [arch=amd64] http://other.example.invalid/apt cloud-sdk-bookworm main\n")
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example.invalid/debian\nSuites: bookworm-backports\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://mirror.example.invalid/debian\nSuites: bookworm\nComponents: main\n")
    (etc / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://node.example.invalid/node_20.x\nSuites: nodistro\nComponents: main\n")
    assert _setup_apt_repo().debian_sources(str(etc)) == [
        "deb http://mirror.example.invalid/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.invalid/debian "
        "bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example.invalid/debian "
        "bookworm-updates main",
    ]


def test_apt_downloads_from_the_stand_in(tmp_path):
    setup = _setup_apt_repo()
    repo = tmp_path / "repo"
    repo.mkdir()
    deb = _deb(str(repo), "kiln-probe", "1.0", "from the loopback repository\n")
    arch = setup.architecture()
    setup.index(str(repo), arch)
    (repo / setup.STAMP).write_text('{"packages": ["kiln-probe"]}\n')
    with running("apt-repo", "--root", str(repo)) as r:
        assert r["sources_line"] == "deb [trusted=yes] %s ./" % r["url"] and r["packages"] == ["kiln-probe"]
        env = setup.private_apt(str(tmp_path / "state"), [r["sources_line"]], arch)
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        policy = subprocess.run(["apt-cache", "policy", "kiln-probe"], env=env, check=True,
                                capture_output=True, text=True).stdout
        assert "Candidate: 1.0" in policy
        out = tmp_path / "out"
        out.mkdir()
        subprocess.run(["apt-get", "download", "-q", "kiln-probe"], env=env, cwd=out, check=True, capture_output=True)
        got = list(out.iterdir())
        assert len(got) == 1 and got[0].read_bytes() == open(deb, "rb").read()


def test_the_stand_in_refuses_a_folder_that_is_not_the_repository(tmp_path):
    from standins.harness import StandinError
    try:
        with running("apt-repo", "--root", str(tmp_path)):
            raise AssertionError("started on an empty folder")
    except StandinError as e:
        assert "exited before ready" in str(e)


def test_the_set_up_filled_the_repository_with_every_playbook_package():
    # scripts/setup (run before every test suite) fills .apt-repo; every package a playbook installs is there.
    setup = _setup_apt_repo()
    with open(os.path.join(REPO, ".apt-repo", "Packages")) as f:
        indexed = {line.split(":", 1)[1].strip() for line in f if line.startswith("Package:")}
    missing = [n for n in setup.playbook_packages(REPO) if n not in indexed]
    assert not missing, "not in .apt-repo (run scripts/setup): %s" % missing
