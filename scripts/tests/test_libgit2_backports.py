"""scripts/libgit2-backports: the backports source is made from the mirror
and keyring the machine is configured with (deb822 .sources or one-line
sources.list, sources.list(5)), for the release's own codename, and nothing
is guessed when no source names it. --print-source only reads."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "libgit2-backports")
# A loopback address stands for the machine's mirror: no host name is written here.
MIRROR = "http://127.0.0.1:9/debian"


def print_source(tmp_path, sources=None, sources_list=None, codename="bookworm"):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in (sources or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    if sources_list is not None:
        (etc / "sources.list").write_text(sources_list)
    release = tmp_path / "os-release"
    release.write_text(f"ID=debian\nVERSION_CODENAME={codename}\n")
    env = dict(os.environ, KILN_APT_ETC=str(etc), KILN_OS_RELEASE=str(release))
    return subprocess.run([SCRIPT, "--print-source"], env=env, capture_output=True, text=True)


def test_deb822_source_of_the_release_suite_is_copied_with_its_keyring(tmp_path):
    run = print_source(tmp_path, sources={"debian.sources": (
        "Types: deb\n"
        "URIs: http://127.0.0.1:9/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/security.gpg\n\n"
        "Types: deb\n# a comment line\n"
        f"URIs: {MIRROR}\nSuites: bookworm bookworm-updates\nComponents: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")})
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm-backports\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def test_one_line_sources_list_with_options(tmp_path):
    run = print_source(tmp_path, sources_list=(
        "# deb http://127.0.0.1:9/old bookworm main\n"
        "deb-src http://127.0.0.1:9/src bookworm main\n"
        f"deb [arch=amd64 signed-by=/etc/apt/keyrings/debian.gpg] {MIRROR} bookworm main\n"))
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        f"Types: deb\nURIs: {MIRROR}\nSuites: bookworm-backports\nComponents: main\n"
        "Signed-By: /etc/apt/keyrings/debian.gpg\n")


def test_the_codename_comes_from_os_release(tmp_path):
    run = print_source(tmp_path, sources_list=f"deb {MIRROR} trixie main\n", codename="trixie")
    assert run.returncode == 0, run.stderr
    assert "Suites: trixie-backports\n" in run.stdout
    assert "Signed-By" not in run.stdout


def test_no_source_for_the_release_is_an_error_naming_where_it_looked(tmp_path):
    run = print_source(tmp_path, sources_list=f"deb {MIRROR} bullseye main\n")
    assert run.returncode == 1
    assert run.stdout == ""
    assert "no apt source for bookworm" in run.stderr and "sources.list" in run.stderr
