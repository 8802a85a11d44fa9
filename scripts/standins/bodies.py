"""Instance bodies for `standin moto --bodies`: an image store of root file systems, and one running body per
moto instance (scripts/standins/README.md, "Bodies", says how to use them and what differs from EC2).

Image store. An AMI is a stack of layers (directories). moto's stock Ubuntu images (owner Canonical,
099720109477: the images the bake starts from) are the base root file system that scripts/setup-rootfs made;
CreateImage of an instance copies the instance's overlay upper directory into a new layer on top of the
instance's own stack; DeregisterImage drops the image's hold on its layers, and a layer no image and no instance
holds is removed. Any other image (RegisterImage, as the tag-driven world makes) has no tree: its instances get
no body.

Bodies. RunInstances and Auto Scaling launches (moto's InstanceBackend.run_instances, which both call) start a
body: an overlay (the image's layers under an upper directory of the instance's own) mounted at
`run/<run id>/instances/<id>/merged`, booted by body/init.py as PID 1 of `unshare --mount --uts --ipc --pid`, on this
network namespace (loopback), its binds held to the instance's private 127.x address. StopInstances stops it and
keeps its upper directory, StartInstances boots it again (RebootInstances: both), TerminateInstances (and
scale-in, which calls it) stops
it and removes its directory. GetConsoleOutput answers the body's console (cloud-init and the units).

The hooks observe moto's models (each calls moto's own method first and acts on what it did); none changes an
answer but GetConsoleOutput's, which moto fills with a fixed sample.

Safety. Every body's process group and every mount the store makes is written to `run/<run id>/marker.json`
before it is made; a stand-in that starts finds the markers of stand-ins that are no longer running and undoes
exactly what each names (kills those process groups, after checking each still carries that run's KILN_BODY
variable; unmounts those mounts; removes that run directory), nothing else.
"""
import base64
import ipaddress
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INIT = os.path.join(HERE, "body", "init.py")
CANONICAL = "099720109477"
# GetConsoleOutput "returns up to 64 KB of console output"
# (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html).
CONSOLE_LIMIT = 64 * 1024
STOP_TIMEOUT = 10.0
log = logging.getLogger("standin.moto.bodies")


class BodiesError(SystemExit):
    """A reason the store cannot start; the stand-in exits with it (status 1, message on stderr)."""

    def __init__(self, message):
        super().__init__("standin moto --bodies: " + message)


def default_images_dir():
    return os.environ.get("KILN_IMAGES_DIR") or os.path.join(ROOT, ".kiln-images")


def _start_time(pid):
    """The process's start time in clock ticks (/proc/PID/stat field 22), so a reused pid is not taken for it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _mounted():
    """Mount points in this mount namespace (/proc/self/mountinfo field 5, octal escapes undone)."""
    points = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            points.add(point.encode().decode("unicode_escape"))
    return points


def _carries(pid, tag):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return ("KILN_BODY=%s/" % tag).encode() in f.read()
    except OSError:
        return False


def _write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def clean_stale_runs(images_dir):
    """Undo what each crashed stand-in's marker names (see the module's docstring); returns the runs cleaned."""
    runs = os.path.join(images_dir, "run")
    cleaned = []
    if not os.path.isdir(runs):
        return cleaned
    for name in sorted(os.listdir(runs)):
        run_dir = os.path.join(runs, name)
        marker_path = os.path.join(run_dir, "marker.json")
        try:
            marker = json.load(open(marker_path))
        except (OSError, ValueError):
            log.warning("leaving %s alone: no readable marker.json", run_dir)
            continue
        if marker.get("run") != name or os.path.realpath(marker.get("dir", "")) != os.path.realpath(run_dir):
            log.warning("leaving %s alone: its marker names another run", run_dir)
            continue
        if _start_time(marker["pid"]) == marker["start_time"]:
            continue  # a stand-in that is still running
        log.info("cleaning up after stand-in pid %d (run %s)", marker["pid"], name)
        groups = [g for g in marker.get("process_groups", []) if _carries(g, name)]
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_start_time(g) is not None for g in groups) and time.monotonic() < deadline:
            time.sleep(0.05)
        mounted = _mounted()
        for point in reversed(marker.get("mounts", [])):
            if point in mounted and point.startswith(run_dir + os.sep):
                subprocess.run(["umount", "--lazy", point], check=False)
        still = [p for p in _mounted() if p.startswith(run_dir + os.sep)]
        if still:
            log.warning("leaving %s: still mounted there: %s", run_dir, ", ".join(sorted(still)))
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        cleaned.append(name)
    return cleaned


class Layer:
    """One directory of an image's stack, removed when nothing holds it (the base is never removed)."""

    def __init__(self, path, removable):
        self.path = path
        self.removable = removable
        self.holders = set()


class Body:
    def __init__(self, instance_id, address, image_id, layers, directory, console):
        self.instance_id = instance_id
        self.address = address
        self.image_id = image_id
        self.layers = layers  # top first, as overlayfs's lowerdir lists them
        self.directory = directory
        self.console = console
        self.process = None
        self.state = "pending"
        self.launched = time.monotonic()  # when moto was asked to start it (RunInstances, StartInstances)

    @property
    def upper(self):
        return os.path.join(self.directory, "upper")

    @property
    def merged(self):
        return os.path.join(self.directory, "merged")

    def describe(self):
        return {"instance_id": self.instance_id, "state": self.state, "address": self.address,
                "image_id": self.image_id, "tree": self.merged if self.state == "running" else None,
                "upper": self.upper, "console": self.console,
                "pid": self.process.pid if self.process and self.process.poll() is None else None}


class ImageStore:
    """The store and the bodies of one stand-in. Every change runs on one worker thread, in the order moto made
    the calls (a CreateImage right after a StopInstances sees the stopped body)."""

    def __init__(self, images_dir, apt_repo=None):
        self.apt_repo = apt_repo
        if os.geteuid() != 0:
            raise BodiesError("needs root (bodies mount overlays and chroot; see scripts/standins/README.md)")
        self.images_dir = os.path.abspath(images_dir)
        self.base = os.path.join(self.images_dir, "base")
        if not os.path.isfile(os.path.join(self.base, "usr", "sbin", "sshd")):
            raise BodiesError("no base root file system in %s (run scripts/setup, which runs scripts/setup-rootfs)"
                              % self.base)
        for tool in ("unshare", "setpriv", "mount", "umount", "cp"):
            if not shutil.which(tool):
                raise BodiesError("needs %s on PATH (util-linux, coreutils)" % tool)
        self.cleaned = clean_stale_runs(self.images_dir)
        self.pid = os.getpid()
        self.start_time = _start_time(self.pid)
        self.run = "%d-%d" % (self.pid, self.start_time)
        self.run_dir = os.path.join(self.images_dir, "run", self.run)
        for sub in ("instances", "layers", "consoles"):
            os.makedirs(os.path.join(self.run_dir, sub))
        self.base_layer = Layer(self.base, removable=False)
        self.images = {}  # image id -> [Layer], top first
        self.bodies = {}  # instance id -> Body
        self.lock = threading.Lock()
        self.mounts = []
        self.process_groups = []
        self._save_marker()
        self.jobs = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="bodies", daemon=True)
        self.worker.start()

    # -- the marker -------------------------------------------------------------------------------------------

    def _save_marker(self):
        _write_json(os.path.join(self.run_dir, "marker.json"), {
            "run": self.run, "pid": self.pid, "start_time": self.start_time, "dir": self.run_dir,
            "mounts": self.mounts, "process_groups": self.process_groups})

    # -- the worker ---------------------------------------------------------------------------------------------

    def submit(self, job, *args):
        done = threading.Event()
        self.jobs.put((job, args, done))
        return done

    def _work(self):
        while True:
            job, args, done = self.jobs.get()
            if job is None:
                done.set()
                return
            try:
                job(*args)
            except Exception:
                log.exception("%s%r failed", job.__name__, args)
            finally:
                done.set()

    # -- images -------------------------------------------------------------------------------------------------

    def layers_of(self, image_id, ami):
        """The image's stack, or None for an image without a tree."""
        with self.lock:
            if image_id in self.images:
                return self.images[image_id]
        if ami is not None and ami.owner_id == CANONICAL and "ubuntu" in (ami.name or "").lower():
            with self.lock:
                self.images[image_id] = [self.base_layer]
                return self.images[image_id]
        return None

    def adopt(self, image_id, tree):
        """An image whose tree was made before this stand-in started: a cached release (one CreateImage layer on
        the base, standins/release.py), registered at start. Its folder is not this store's: never removed."""
        with self.lock:
            self.images[image_id] = [Layer(os.path.abspath(tree), removable=False), self.base_layer]

    def create_image(self, instance_id, image_id):
        body = self.bodies.get(instance_id)
        if body is None:
            log.warning("CreateImage %s of %s: the instance has no body, so the image has no tree",
                        image_id, instance_id)
            return
        path = os.path.join(self.run_dir, "layers", image_id)
        os.makedirs(path)
        # -a keeps owners, modes, overlayfs's whiteouts (0/0 character devices) and its trusted.overlay.* xattrs,
        # so that the copy stacked as a lower layer shows what the instance saw.
        subprocess.run(["cp", "-a", "--reflink=auto", body.upper + "/.", path], check=True)
        layer = Layer(path, removable=True)
        stack = [layer] + body.layers
        with self.lock:
            for each in stack:
                each.holders.add(image_id)
            self.images[image_id] = stack
        log.info("image %s: %s's tree (%d layers)", image_id, instance_id, len(stack))

    def deregister_image(self, image_id):
        with self.lock:
            stack = self.images.pop(image_id, None)
        if stack:
            self._release(stack, image_id)

    def _release(self, stack, holder):
        with self.lock:
            gone = []
            for layer in stack:
                layer.holders.discard(holder)
                if layer.removable and not layer.holders:
                    gone.append(layer)
        for layer in gone:
            shutil.rmtree(layer.path, ignore_errors=True)

    # -- bodies -------------------------------------------------------------------------------------------------

    def launch(self, instance, ami):
        """Record the instance's body and boot it (on the worker)."""
        address = instance.private_ip
        stack = self.layers_of(instance.image_id, ami)
        console = os.path.join(self.run_dir, "consoles", instance.id + ".log")
        if stack is None:
            with open(console, "a") as f:
                f.write("[kiln-body] no body: image %s has no tree in the stand-in's image store\n"
                        % instance.image_id)
            return
        if not address or not ipaddress.ip_address(address).is_loopback:
            with open(console, "a") as f:
                f.write("[kiln-body] no body: private address %r is not on 127.0.0.0/8\n" % address)
            return
        body = Body(instance.id, address, instance.image_id, stack,
                    os.path.join(self.run_dir, "instances", instance.id), console)
        with self.lock:
            for layer in stack:
                layer.holders.add(instance.id)
            self.bodies[instance.id] = body
        seed = {"meta-data": json.dumps({
                    "instance-id": instance.id,
                    "local-hostname": "ip-" + address.replace(".", "-"),
                    "public-keys": [key for key in [_public_key(instance)] if key]}).encode(),
                "user-data": _user_data(instance)}
        self.submit(self._first_boot, body, seed)

    def _first_boot(self, body, seed):
        for sub in ("upper", "work", "merged", "seed"):
            os.makedirs(os.path.join(body.directory, sub))
        for name, data in seed.items():
            with open(os.path.join(body.directory, "seed", name), "wb") as f:
                f.write(data)
        self._boot(body)

    def _boot(self, body):
        if body.state == "running":
            return
        lower = ":".join(layer.path for layer in body.layers)
        options = "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, body.upper, os.path.join(body.directory, "work"))
        with self.lock:
            self.mounts.append(body.merged)
            self._save_marker()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, body.merged], check=True)
        if self.apt_repo:
            # The base has no apt sources (a body shares this network: it must not reach a mirror); this
            # stand-in's loopback repository is written at every boot, so that an image made by CreateImage with
            # an earlier run's port in it is right again.
            with open(os.path.join(body.merged, "etc/apt/sources.list.d/kiln-loopback.list"), "w") as f:
                f.write("deb [trusted=yes] %s ./\n" % self.apt_repo)
        config = os.path.join(body.directory, "body.json")
        _write_json(config, {"tree": body.merged, "address": body.address, "instance_id": body.instance_id,
                             "seed": os.path.join(body.directory, "seed"), "launched": body.launched})
        console = open(body.console, "ab")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "KILN_BODY": "%s/%s" % (self.run, body.instance_id), "PYTHONUNBUFFERED": "1"}
        # setpriv --pdeathsig: the body dies with this worker thread (the stand-in); unshare --kill-child: the
        # PID namespace (every process of the body) dies with unshare. --uts: cloud-init's set_hostname names the
        # body, not this machine; --ipc: the body's System V IPC is its own.
        argv = ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
                "--kill-child",
                "--propagation", "private", "--", sys.executable, "-S", INIT, config]
        with self.lock:
            body.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
            self.process_groups.append(body.process.pid)
            self._save_marker()
        console.close()
        body.state = "running"
        log.info("body %s booting at %s (pid %d)", body.instance_id, body.address, body.process.pid)

    def _halt(self, body):
        """Stop the body's processes and unmount its tree; its upper directory stays."""
        if body.process is not None:
            _stop_group(body.process)
            with self.lock:
                if body.process.pid in self.process_groups:
                    self.process_groups.remove(body.process.pid)
            body.process = None
        if body.merged in _mounted():
            subprocess.run(["umount", body.merged], check=False)
            if body.merged in _mounted():
                subprocess.run(["umount", "--lazy", body.merged], check=False)
        with self.lock:
            if body.merged in self.mounts:
                self.mounts.remove(body.merged)
            self._save_marker()

    def stop(self, instance_id):
        body = self.bodies.get(instance_id)
        if body is not None:
            self.submit(self._stop, body)

    def _stop(self, body):
        self._halt(body)
        body.state = "stopped"

    def start(self, instance_id):
        body = self.bodies.get(instance_id)
        if body is not None:
            body.launched = time.monotonic()
            self.submit(self._boot, body)

    def reboot(self, instance_id):
        body = self.bodies.get(instance_id)
        if body is not None and body.state == "running":
            body.launched = time.monotonic()
            self.submit(self._stop, body)
            self.submit(self._boot, body)

    def terminate(self, instance_id):
        with self.lock:
            body = self.bodies.pop(instance_id, None)
        if body is not None:
            self.submit(self._terminate, body)

    def _terminate(self, body):
        self._halt(body)
        body.state = "terminated"
        shutil.rmtree(body.directory, ignore_errors=True)
        self._release(body.layers, body.instance_id)

    def console_output(self, instance_id):
        path = os.path.join(self.run_dir, "consoles", instance_id + ".log")
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - CONSOLE_LIMIT))
                return f.read()
        except OSError:
            return None

    def describe(self, instance_id=None):
        with self.lock:
            bodies = dict(self.bodies)
        if instance_id is not None:
            body = bodies.get(instance_id)
            return body.describe() if body else None
        return {"run_dir": self.run_dir, "base": self.base,
                "bodies": {i: b.describe() for i, b in sorted(bodies.items())},
                "images": {i: [layer.path for layer in stack] for i, stack in sorted(self.images.items())}}

    def wait_idle(self):
        self.submit(lambda: None).wait()

    def close(self):
        """Stop every body (all at once), unmount, remove this run's directory and its marker."""
        self.wait_idle()
        with self.lock:
            bodies = list(self.bodies.values())
        for body in bodies:
            if body.process is not None and body.process.poll() is None:
                for pid in _children(body.process.pid) or [body.process.pid]:
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except OSError:
                        pass
        for body in bodies:
            self._halt(body)
        done = self.submit(None)
        done.wait()
        if not any(p.startswith(self.run_dir + os.sep) for p in _mounted()):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            log.warning("left %s: something is still mounted there (the next start cleans it)", self.run_dir)


def _stop_group(process):
    """SIGTERM to the body's init (PID 1 of its namespace: it stops its units, as an instance shutting down stops
    its services), then, when the body is still there after STOP_TIMEOUT, SIGKILL to its process group."""
    if process.poll() is None:
        for pid in _children(process.pid) or [process.pid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    process.wait()


def _children(pid):
    """The pids `pid`'s threads forked (/proc/PID/task/TID/children): for unshare --fork, the body's init."""
    found = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                found += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return found


def _public_key(instance):
    """The launch key pair's public key, from moto's key pairs (CreateKeyPair, ImportKeyPair)."""
    if not instance.key_name:
        return None
    pair = instance.ec2_backend.key_pairs.get(instance.key_name)
    if pair is None:
        return None
    material = pair.material_public
    return (material.decode() if isinstance(material, bytes) else str(material)).strip()


def _user_data(instance):
    """The user data as the instance reads it from IMDS: the bytes RunInstances was given, base64 undone."""
    value = instance.user_data
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return b""
    if hasattr(value, "as_bytes"):
        return base64.b64decode(value.as_bytes())
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return value.encode()


def install(store):
    """Hook the store into moto's models; returns a WSGI wrapper that serves `/__kiln_bodies[/ID]`."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.amis import AmiBackend
    from moto.ec2.models.instances import Instance, InstanceBackend
    from moto.ec2.responses.general import General
    from moto.ec2.utils import Base64EncodedString

    if getattr(InstanceBackend, "_kiln_bodies", None) is not None:
        raise RuntimeError("bodies are already installed in this process")
    InstanceBackend._kiln_bodies = store
    run_instances = InstanceBackend.run_instances
    create_image = AmiBackend.create_image
    deregister_image = AmiBackend.deregister_image
    instance_start, instance_stop, instance_terminate = Instance.start, Instance.stop, Instance.terminate
    instance_reboot = Instance.reboot
    get_console_output = General.get_console_output

    def run_instances_with_bodies(self, image_id, *args, **kwargs):
        reservation = run_instances(self, image_id, *args, **kwargs)
        for instance in reservation.instances:
            store.launch(instance, self.amis.get(instance.image_id))
        return reservation

    def start_with_body(self):
        previous = instance_start(self)
        if previous.name == "stopped":
            store.start(self.id)
        return previous

    def stop_with_body(self):
        previous = instance_stop(self)
        store.stop(self.id)
        return previous

    def terminate_with_body(self):
        previous = instance_terminate(self)
        store.terminate(self.id)
        return previous

    def reboot_with_body(self):
        instance_reboot(self)
        store.reboot(self.id)

    def create_image_with_tree(self, instance_id, *args, **kwargs):
        ami = create_image(self, instance_id, *args, **kwargs)
        store.submit(store.create_image, instance_id, ami.id).wait()
        return ami

    def deregister_image_and_tree(self, ami_id):
        deregister_image(self, ami_id)
        store.submit(store.deregister_image, ami_id)

    def console_of_body(self):
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        output = store.console_output(instance.id)
        if output is None:
            return get_console_output(self)
        from moto.core.utils import utcnow
        return ActionResult({"InstanceId": instance.id, "Timestamp": utcnow(),
                             "Output": Base64EncodedString(base64.b64encode(output).decode("ascii"))})

    InstanceBackend.run_instances = run_instances_with_bodies
    Instance.start, Instance.stop, Instance.terminate = start_with_body, stop_with_body, terminate_with_body
    Instance.reboot = reboot_with_body
    AmiBackend.create_image = create_image_with_tree
    AmiBackend.deregister_image = deregister_image_and_tree
    General.get_console_output = console_of_body

    def wrap(app):
        def application(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if not path.startswith("/__kiln_bodies"):
                return app(environ, start_response)
            rest = path[len("/__kiln_bodies"):].strip("/")
            store.wait_idle()  # what was asked before this request has been done
            value = store.describe(rest) if rest else store.describe()
            status = "200 OK" if value is not None else "404 Not Found"
            body = json.dumps(value if value is not None else {"error": "no body for %s" % rest}).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return application

    return wrap
