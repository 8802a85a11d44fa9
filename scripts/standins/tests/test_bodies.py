"""`standin moto --bodies`: instances that run (scripts/standins/bodies.py, README "Bodies").

Needs root and the base root file system (scripts/setup runs scripts/setup-rootfs). The bodies live on
127.0.200.0/24 so that they do not meet the tag-driven fleet's 127.0.1.x listeners of other tests.
"""
import json
import os
import shlex
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from standins import bodies as bodies_module
from standins import packer_moto
from standins.harness import StandIn, running, standin_env
from .conftest import client

# Generous bounds for waits on a machine shared with other builds: each ends a wait that would otherwise hang,
# and its failure shows the body's console.
BOOT_WAIT = 180.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with running("moto", "--bodies", timeout=60) as m:
        ec2 = client("ec2", m["url"])
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.200.0/24")["Subnet"]["SubnetId"]
        key = ec2.create_key_pair(KeyName="kiln-launch")
        key_file = tmp_path_factory.mktemp("keys") / "launch.pem"
        key_file.write_text(key["KeyMaterial"])
        key_file.chmod(0o600)
        yield {"moto": m, "ec2": ec2, "subnet": subnet, "stock": packer_moto.stock_ubuntu_ami(m["url"]),
               "key_file": str(key_file)}


def launch(world, image=None, user_data=None, key="kiln-launch"):
    args = {"ImageId": image or world["stock"], "MinCount": 1, "MaxCount": 1, "SubnetId": world["subnet"]}
    if key:
        args["KeyName"] = key
    if user_data is not None:
        args["UserData"] = user_data
    instance = world["ec2"].run_instances(**args)["Instances"][0]
    return instance["InstanceId"], instance["PrivateIpAddress"]


def body(world, instance_id):
    try:
        with urllib.request.urlopen(world["moto"]["bodies_url"] + "/" + instance_id) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def console(state):
    with open(state["console"], errors="replace") as f:
        return f.read()


def wait_until(check, what, state_of):
    deadline = time.monotonic() + BOOT_WAIT
    while True:
        value = check()
        if value:
            return value
        state = state_of()
        if state and state["state"] == "running" and state["pid"] is None:
            pytest.fail("%s: the body's init exited; its console:\n%s" % (what, console(state)[-4000:]))
        if time.monotonic() > deadline:
            state = state_of()
            pytest.fail("%s: not within %.0fs; the body's console:\n%s" % (what, BOOT_WAIT, console(state)[-4000:]))
        time.sleep(0.2)


def wait_booted(world, instance_id):
    return wait_until(lambda: (lambda s: s if "[kiln-body] booted" in console(s) else None)(body(world, instance_id)),
                      "%s booted" % instance_id, lambda: body(world, instance_id))


def ssh(world, address, command, key_file=None):
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", key_file or world["key_file"], "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=10", "ubuntu@" + address, command],
        stdin=subprocess.DEVNULL, capture_output=True, text=True)


def http_get(address, path):
    try:
        with urllib.request.urlopen("http://%s:8080%s" % (address, path), timeout=10) as answer:
            return json.load(answer)
    except (OSError, ValueError):
        return None


def test_a_stock_image_body_answers_ssh_with_its_launch_key_and_runs_a_shell_user_data(world, tmp_path):
    host_name = socket.gethostname()
    instance_id, address = launch(world, user_data="#!/bin/sh\necho \"shell user data ran as $(id -un)\" "
                                                   "> /var/tmp/shell-user-data\n")
    state = wait_booted(world, instance_id)
    # cloud-init set the body's hostname in the body's own UTS namespace, not this machine's.
    assert socket.gethostname() == host_name
    result = ssh(world, address, "id -un; sudo -n id -un; hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ubuntu", "root", "ip-" + address.replace(".", "-")]
    # Nothing in a body reaches past loopback for a name (no name server; its own name in /etc/hosts), and its
    # root cannot change this machine's kernel settings.
    names = ssh(world, address, "grep -c nameserver /etc/resolv.conf; getent hosts $(hostname) | cut -d' ' -f1")
    assert names.stdout.split() == ["0", "127.0.1.1"], names
    sysctl = ssh(world, address, "sudo -n sh -c 'cat /proc/sys/kernel/printk_ratelimit "
                                 "> /proc/sys/kernel/printk_ratelimit'")
    assert sysctl.returncode != 0 and "Read-only file system" in sysctl.stderr, sysctl
    with open(os.path.join(state["tree"], "var/tmp/shell-user-data")) as f:
        assert f.read() == "shell user data ran as root\n"

    # Another key is refused: sshd takes the launch key pair only.
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    assert ssh(world, address, "true", key_file=str(other)).returncode == 255

    # sshd listens on the instance's address only (the bind shim turned its 0.0.0.0 and :: into that).
    listeners = subprocess.run(["ss", "-Hltnp", "sport = :22"], capture_output=True, text=True).stdout
    sshd = [line.split()[3] for line in listeners.splitlines() if "sshd" in line]
    assert address + ":22" in sshd and all(not s.startswith(("0.0.0.0", "*", "[")) for s in sshd), listeners

    # GetConsoleOutput is the body's console: cloud-init's stages and the user data's.
    output = world["ec2"].get_console_output(InstanceId=instance_id)["Output"]
    assert "running 'modules:final'" in output and "[kiln-body] booted" in output


HELLO_SERVER = """\
import json, os, sys, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

STARTED = str(uuid.uuid4())

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        body = json.dumps({"greeting": os.environ.get("GREETING"), "phase": os.environ.get("PHASE"),
                           "user": os.environ.get("USER"),
                           "cwd": os.getcwd(), "started": STARTED}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
"""

HELLO_UNIT = """\
[Unit]
Description=hello
After=network.target

[Service]
User=ubuntu
WorkingDirectory=/opt/hello
Environment=GREETING=from-the-unit
EnvironmentFile=-/etc/default/hello
EnvironmentFile=-/etc/default/hello-phase
ExecStart=/usr/bin/python3 /opt/hello/server.py
Restart=on-failure
RestartSec=0.2

[Install]
WantedBy=multi-user.target
"""


def mime_user_data():
    message = MIMEMultipart()
    message.attach(MIMEText(textwrap.dedent("""\
        #cloud-config
        write_files:
          - path: /etc/default/hello
            content: "GREETING=from-user-data\\n"
        """), "cloud-config"))
    # As the demo's user_init does: configure, then restart the unit (the body's systemctl asks its init).
    message.attach(MIMEText(textwrap.dedent("""\
        #!/bin/bash
        set -e
        echo PHASE=restarted-by-user-data > /etc/default/hello-phase
        systemctl restart hello
        systemctl is-active hello > /var/tmp/mime-script-ran
        """), "x-shellscript"))
    return message.as_string()


def test_create_image_of_a_changed_instance_gives_an_image_whose_units_run_configured_by_mime_user_data(world):
    builder_id, _ = launch(world)
    builder = wait_booted(world, builder_id)
    tree = builder["tree"]
    os.makedirs(os.path.join(tree, "opt/hello"))
    with open(os.path.join(tree, "opt/hello/server.py"), "w") as f:
        f.write(HELLO_SERVER)
    with open(os.path.join(tree, "etc/systemd/system/hello.service"), "w") as f:
        f.write(HELLO_UNIT)
    os.symlink("/etc/systemd/system/hello.service",
               os.path.join(tree, "etc/systemd/system/multi-user.target.wants/hello.service"))
    os.remove(os.path.join(tree, "etc/motd"))  # a deletion (an overlay whiteout) is part of the image too
    ec2 = world["ec2"]
    ec2.stop_instances(InstanceIds=[builder_id])
    image = ec2.create_image(InstanceId=builder_id, Name="hello")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder_id])

    instance_id, address = launch(world, image=image, user_data=mime_user_data())
    state = wait_booted(world, instance_id)
    assert not os.path.exists(os.path.join(state["tree"], "etc/motd"))
    with open(os.path.join(state["tree"], "var/tmp/mime-script-ran")) as f:
        assert f.read() == "active\n"
    first = wait_until(lambda: http_get(address, "/"), "hello answering on %s:8080" % address,
                       lambda: body(world, instance_id))
    assert first == dict(first, greeting="from-user-data", phase="restarted-by-user-data", user="ubuntu",
                         cwd="/opt/hello")

    # Restart=on-failure: the unit comes back after it dies.
    assert http_get(address, "/crash") is None
    again = wait_until(lambda: http_get(address, "/"), "hello restarted", lambda: body(world, instance_id))
    assert again["started"] != first["started"]
    assert "hello.service: exited 3" in console(body(world, instance_id))



# Units that end at once, each appending a line to its own file per run, to see which the body's init starts
# again. systemd.service(5): RestartPreventExitStatus= "will prevent automatic service restarts, regardless of
# the restart setting configured with Restart="; SuccessExitStatus= adds statuses "considered successful
# termination", which Restart=on-failure does not restart; both take numbers, status names (systemd.exec(5)'s
# TEMPFAIL is 75) and signal names, may be given more than once, and an empty assignment resets the list.
EXIT_STATUS_UNITS = {
    # Not listed anywhere: restarted, so the test can see that a restart would have happened.
    "restarted": ("exit 5", "Restart=on-failure\nRestartPreventExitStatus=42 SIGUSR1"),
    "prevented": ("exit 42", "Restart=always\nRestartPreventExitStatus=TEMPFAIL\nRestartPreventExitStatus=42"),
    "prevented-signal": ("kill -USR1 $$", "Restart=always\nRestartPreventExitStatus=SIGUSR1"),
    "success": ("exit 75", "Restart=on-failure\nSuccessExitStatus=TEMPFAIL"),
    "success-reset": ("exit 75", "Restart=on-failure\nSuccessExitStatus=75\nSuccessExitStatus="),
}


def exit_status_user_data():
    lines = ["#!/bin/sh", "set -e"]
    for name, (end, service) in EXIT_STATUS_UNITS.items():
        unit = "[Service]\nExecStart=/bin/sh -c 'echo run >> /var/tmp/%s.runs; %s'\nRestartSec=0.1\n%s\n" % (
            name, end, service)
        lines.append("printf '%%s' %s > /etc/systemd/system/%s.service" % (shlex.quote(unit), name))
    lines.append("systemctl start " + " ".join(EXIT_STATUS_UNITS))
    return "\n".join(lines) + "\n"


def test_a_unit_is_not_restarted_after_a_status_its_unit_lists(world):
    instance_id, _ = launch(world, user_data=exit_status_user_data())
    state = wait_booted(world, instance_id)

    def runs(name):
        try:
            with open(os.path.join(state["tree"], "var/tmp/%s.runs" % name)) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0
    # Each unit was started at the same time with the same RestartSec; once those that restart have run three
    # times, the others would have run more than once had they been restarted.
    wait_until(lambda: runs("restarted") >= 3 and runs("success-reset") >= 3, "the restarted units ran 3 times",
               lambda: body(world, instance_id))
    assert {name: runs(name) for name in ("prevented", "prevented-signal", "success")} == {
        "prevented": 1, "prevented-signal": 1, "success": 1}, console(body(world, instance_id))[-3000:]
    text = console(body(world, instance_id))
    assert "prevented.service: exited 42" in text and "prevented-signal.service: killed by SIGUSR1" in text
    world["ec2"].terminate_instances(InstanceIds=[instance_id])

def served_host_keys(address):
    """The fingerprints (SHA256:...) of the host keys the body's sshd offers, as a client sees them."""
    scan = subprocess.run(["ssh-keyscan", "-T", "10", address], capture_output=True, text=True)
    fingerprints = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=scan.stdout, capture_output=True, text=True)
    return {line.split()[1] for line in fingerprints.stdout.splitlines()}


def console_host_keys(world, instance_id):
    """The fingerprints between cloud-init's BEGIN/END SSH HOST KEY FINGERPRINTS lines in GetConsoleOutput, the
    block an EC2 console shows (cloud-init's keys-to-console module, `ssh-keygen -l` of each host key)."""
    output = world["ec2"].get_console_output(InstanceId=instance_id)["Output"]
    if "-----BEGIN SSH HOST KEY FINGERPRINTS-----" not in output:
        return set()
    block = output.split("-----BEGIN SSH HOST KEY FINGERPRINTS-----", 1)[1].split(
        "-----END SSH HOST KEY FINGERPRINTS-----", 1)[0]
    return {word for word in block.split() if word.startswith("SHA256:")}


def test_every_instance_makes_its_own_ssh_host_keys_and_its_console_shows_their_fingerprints(world):
    # As on EC2: an image holds no host keys of an instance it will be given to; cloud-init's ssh module makes
    # them at an instance's first boot (and deletes those an image made from another instance carries).
    first_id, first_address = launch(world)
    second_id, second_address = launch(world)
    wait_booted(world, first_id)
    wait_booted(world, second_id)
    first, second = served_host_keys(first_address), served_host_keys(second_address)
    assert first and second and not first & second, (first, second)
    assert console_host_keys(world, first_id) == first
    assert console_host_keys(world, second_id) == second

    # An image made from an instance: its instances do not keep the builder's keys.
    ec2 = world["ec2"]
    ec2.stop_instances(InstanceIds=[second_id])
    image = ec2.create_image(InstanceId=second_id, Name="keys")["ImageId"]
    ec2.terminate_instances(InstanceIds=[first_id, second_id])
    child_id, child_address = launch(world, image=image)
    wait_booted(world, child_id)
    child = served_host_keys(child_address)
    assert child and not child & second, (child, second)
    assert console_host_keys(world, child_id) == child
    ec2.terminate_instances(InstanceIds=[child_id])


def test_stop_keeps_the_copy_start_boots_it_again_terminate_removes_it(world):
    instance_id, address = launch(world)
    state = wait_booted(world, instance_id)
    with open(os.path.join(state["tree"], "var/tmp/kept"), "w") as f:
        f.write("kept\n")
    ec2 = world["ec2"]
    ec2.stop_instances(InstanceIds=[instance_id])
    stopped = body(world, instance_id)
    assert stopped["state"] == "stopped" and stopped["pid"] is None and stopped["tree"] is None
    assert "ssh.service: stopped" in console(stopped) and "[kiln-body] stopped" in console(stopped)
    assert os.path.exists(os.path.join(stopped["upper"], "var/tmp/kept"))
    assert ssh(world, address, "true").returncode == 255

    ec2.start_instances(InstanceIds=[instance_id])
    wait_until(lambda: ssh(world, address, "cat /var/tmp/kept").stdout == "kept\n", "restarted body answering ssh",
               lambda: body(world, instance_id))

    ec2.terminate_instances(InstanceIds=[instance_id])
    assert body(world, instance_id) is None
    assert not os.path.exists(os.path.dirname(stopped["upper"]))
    assert ssh(world, address, "true").returncode == 255


def test_auto_scaling_launches_bodies_and_scale_in_removes_them(world):
    ec2, autoscaling = world["ec2"], client("autoscaling", world["moto"]["url"])
    template = ec2.create_launch_template(LaunchTemplateName="bodies", LaunchTemplateData={
        "ImageId": world["stock"], "InstanceType": "t3.micro", "KeyName": "kiln-launch",
        "UserData": __import__("base64").b64encode(b"#!/bin/sh\necho from-the-template > /var/tmp/lt\n").decode()})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="bodies", MinSize=0, MaxSize=2, DesiredCapacity=1, VPCZoneIdentifier=world["subnet"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"})
    instance_id = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["bodies"])[
        "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    state = wait_booted(world, instance_id)
    with open(os.path.join(state["tree"], "var/tmp/lt")) as f:
        assert f.read() == "from-the-template\n"
    autoscaling.set_desired_capacity(AutoScalingGroupName="bodies", DesiredCapacity=0)
    assert body(world, instance_id) is None
    assert not os.path.exists(os.path.dirname(state["upper"]))


def test_an_image_without_a_tree_gives_instances_without_bodies(world):
    image = world["ec2"].register_image(Name="records-only", Architecture="x86_64", RootDeviceName="/dev/xvda",
                                        VirtualizationType="hvm")["ImageId"]
    instance_id, _ = launch(world, image=image)
    assert body(world, instance_id) is None
    output = world["ec2"].get_console_output(InstanceId=instance_id)["Output"]
    assert "no body: image %s has no tree" % image in output


def _mount_points():
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _processes_carrying(tag):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if ("KILN_BODY=%s/" % tag).encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_killed_stand_in_is_cleaned_up_by_the_next_start_and_nothing_else(tmp_path):
    images = bodies_module.default_images_dir()
    stranger = os.path.join(images, "run", "not-a-stand-in-%d" % os.getpid())
    os.makedirs(stranger)
    env = standin_env({"NO_PROXY": "127.0.0.1,localhost"})
    crashed = StandIn("moto", "--bodies", env=env, timeout=60, log=str(tmp_path / "crashed.log"))
    try:
        ec2 = client("ec2", crashed.url)
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.201.0/24")["Subnet"]["SubnetId"]
        image = packer_moto.stock_ubuntu_ami(crashed.url)
        instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0][
            "InstanceId"]
        world = {"moto": crashed.ready}
        state = wait_until(lambda: body(world, instance_id), "a body", lambda: None)
        wait_until(lambda: state["tree"] in _mount_points(), "the body's tree mounted", lambda: state)
        run_dir = crashed.ready["run_dir"]
        run = os.path.basename(run_dir)
        os.kill(crashed.proc.pid, signal.SIGKILL)
        crashed.proc.wait()
    finally:
        crashed.stop()
    # What the crash left: the mount and the run directory (its processes went with it: setpriv --pdeathsig).
    assert state["tree"] in _mount_points()
    assert os.path.exists(os.path.join(run_dir, "marker.json"))
    wait_until(lambda: not _processes_carrying(run), "the crashed body's processes gone", lambda: state)

    with StandIn("moto", "--bodies", env=env, timeout=60, log=str(tmp_path / "next.log")) as following:
        assert following.ready["run_dir"] != run_dir
        assert state["tree"] not in _mount_points()
        assert not os.path.exists(run_dir)
        assert os.path.isdir(stranger), "a folder without a marker is not the stand-in's to remove"
    os.rmdir(stranger)
    with open(tmp_path / "next.log") as f:
        assert "cleaning up after stand-in pid %d (run %s)" % (int(run.split("-")[0]), run) in f.read()


SLOW_TO_STOP = """#!/bin/sh
cat > /etc/systemd/system/slow-stop.service <<'UNIT'
[Service]
ExecStart=/bin/sh -c 'trap "" TERM; while :; do sleep 0.2; done'
UNIT
systemctl daemon-reload
systemctl start slow-stop
echo slow-stop started
"""


def test_a_stand_in_with_bodies_is_given_the_time_it_says_it_needs_to_stop(tmp_path):
    # A body whose unit ignores SIGTERM takes the body init's 5 s to stop. A caller that gives the stand-in less
    # (here 1 s after SIGTERM) would SIGKILL it in the middle of its own shutdown and leave the body's mount; the
    # ready line's stop_seconds is what the stand-in needs, and the harness waits at least that long.
    env = standin_env({"NO_PROXY": "127.0.0.1,localhost"})
    hurried = StandIn("moto", "--bodies", env=env, timeout=60, term_timeout=1, log=str(tmp_path / "hurried.log"))
    try:
        assert hurried.ready["stop_seconds"] >= bodies_module.STOP_TIMEOUT
        ec2 = client("ec2", hurried.url)
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.202.0/24")["Subnet"]["SubnetId"]
        instance_id = ec2.run_instances(ImageId=packer_moto.stock_ubuntu_ami(hurried.url), MinCount=1, MaxCount=1,
                                        SubnetId=subnet, UserData=SLOW_TO_STOP)["Instances"][0]["InstanceId"]
        world = {"moto": hurried.ready}
        state = wait_until(lambda: (lambda s: s if s and "slow-stop started" in console(s) else None)(
            body(world, instance_id)), "the unit that ignores SIGTERM started", lambda: body(world, instance_id))
        run_dir = hurried.ready["run_dir"]
    finally:
        hurried.stop()
    try:
        assert state["tree"] not in _mount_points(), "the stand-in was killed before it unmounted its body"
        assert not os.path.exists(run_dir)
    finally:
        with StandIn("moto", "--bodies", env=env, timeout=60, log=str(tmp_path / "next.log")):
            pass  # whatever a failed run left, the next start cleans (its own test above)


def test_bodies_without_a_base_root_file_system_say_what_to_run(tmp_path):
    from standins.harness import command
    result = subprocess.run(command("moto", "--bodies", "--images-dir", str(tmp_path)), env=standin_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert ("standin moto --bodies: no base root file system in %s/base (run scripts/setup, which runs "
            "scripts/setup-rootfs)" % tmp_path) in result.stderr
    assert os.listdir(tmp_path) == [], "nothing is made when the stand-in cannot start"
