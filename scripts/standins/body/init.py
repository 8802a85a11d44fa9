"""PID 1 of one instance body (scripts/standins/bodies.py starts it under
`unshare --mount --uts --ipc --pid --fork`): boots the instance's tree the way an EC2
Ubuntu instance boots, without systemd.

    python3 init.py CONFIG.json     # {"tree", "address", "instance_id", "hostname"}

Order, as systemd orders Ubuntu's units (cloud-init.service is Before=ssh.service;
cloud-final.service is After=multi-user.target):
  1. the kernel file systems inside the tree (/proc of this PID namespace, /dev, /run);
  2. `cloud-init init --local`, `cloud-init init` (the NoCloud seed in /run/kiln/seed:
     the instance's meta-data with its key pair, and its user data);
  3. every enabled unit of the image (symlinks in /etc/systemd/system/*.target.wants),
     each run as systemd would run its [Service]: ExecStartPre, ExecStart as its
     User/Group, with Environment, EnvironmentFile, WorkingDirectory,
     RuntimeDirectory, and restarted as Restart= says, with SuccessExitStatus= and
     RestartPreventExitStatus= (systemd.service(5));
  4. `cloud-init modules --mode=config`, then `--mode=final` (user scripts run here).
stdout and stderr (the body's console, GetConsoleOutput) take every child's output.
SIGTERM stops every unit (SIGTERM, then SIGKILL after 5 s) and exits; the kernel
then ends whatever is left in the PID namespace.
"""
import ctypes
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# cloud-init is run by this init in order (step 2 and 4); systemd's own units have no systemd to talk to.
NOT_SUPERVISED = re.compile(
    r"^(cloud-.*|systemd-.*|getty@.*|serial-getty@.*|e2scrub.*|fstrim|apt-daily.*)\.(service|timer)$")
DEVICES = ["null", "zero", "full", "random", "urandom", "tty"]
HERE = os.path.dirname(os.path.abspath(__file__))


# Seconds since the stand-in was asked to start this body (CLOCK_MONOTONIC is the host's: a PID namespace has no
# clock of its own), as a kernel's console stamps its lines with the seconds since boot.
LAUNCHED = time.monotonic()


def say(message):
    sys.stdout.write("[%11.6f] [kiln-body] %s\n" % (time.monotonic() - LAUNCHED, message))
    sys.stdout.flush()


_LIBC = ctypes.CDLL(None, use_errno=True)
# <sys/mount.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "remount": MS_REMOUNT,
         "bind": MS_BIND}


def mount(source, target, fstype=None, options=None, bind=False):
    """mount(2) itself, not mount(8): a boot makes about twenty mounts, and a process each cost a tenth of a
    second of the body's start on a busy machine. `options` are mount(8)'s words: the flags above, the rest
    given to the file system."""
    flags = MS_BIND if bind else 0
    data = []
    for word in (options or "").split(","):
        if word in FLAGS:
            flags |= FLAGS[word]
        elif word:
            data.append(word)
    if _LIBC.mount(source.encode(), target.encode(), (fstype or "").encode() or None, flags,
                   ",".join(data).encode() or None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "mount %s on %s: %s" % (source, target, os.strerror(error)))


def prepare_tree(tree, address, seed):
    """What the kernel and systemd give an instance before its units start."""
    mount("proc", os.path.join(tree, "proc"), "proc", "nosuid,nodev,noexec")
    # The body shares this machine's kernel and network namespace: its root may not change their settings
    # (sysctl), as a container runtime keeps /proc/sys read-only.
    for name in ("sys", "sysrq-trigger"):
        path = os.path.join(tree, "proc", name)
        if not os.path.exists(path):
            continue  # a kernel built without it (CONFIG_MAGIC_SYSRQ)
        mount(path, path, bind=True)
        mount("none", path, options="remount,bind,ro")
    dev = os.path.join(tree, "dev")
    mount("tmpfs", dev, "tmpfs", "mode=0755,nosuid")
    for name in DEVICES:
        target = os.path.join(dev, name)
        open(target, "w").close()
        mount("/dev/" + name, target, bind=True)
    os.makedirs(os.path.join(dev, "pts"))
    mount("devpts", os.path.join(dev, "pts"), "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    os.makedirs(os.path.join(dev, "shm"))
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", "mode=1777,nosuid,nodev")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    run = os.path.join(tree, "run")
    mount("tmpfs", run, "tmpfs", "mode=0755,nosuid,nodev")
    os.makedirs(os.path.join(run, "lock"), mode=0o1777)
    os.makedirs(os.path.join(run, "kiln"))
    # Read by the bind shim (/etc/ld.so.preload, scripts/standins/body/bind_address.c).
    with open(os.path.join(run, "kiln", "address"), "w") as f:
        f.write(address + "\n")
    target_seed = os.path.join(run, "kiln", "seed")
    os.makedirs(target_seed)
    for name in os.listdir(seed):
        with open(os.path.join(seed, name), "rb") as source, open(os.path.join(target_seed, name), "wb") as dest:
            dest.write(source.read())


def passwd_entry(tree, user):
    for line in open(os.path.join(tree, "etc", "passwd")):
        fields = line.rstrip("\n").split(":")
        if len(fields) >= 7 and (fields[0] == user or fields[2] == user):
            return {"name": fields[0], "uid": int(fields[2]), "gid": int(fields[3]), "home": fields[5],
                    "shell": fields[6]}
    raise KeyError("no user %r in the image's /etc/passwd" % user)


def group_id(tree, group):
    for line in open(os.path.join(tree, "etc", "group")):
        fields = line.rstrip("\n").split(":")
        if len(fields) >= 3 and (fields[0] == group or fields[2] == group):
            return int(fields[2])
    raise KeyError("no group %r in the image's /etc/group" % group)


def supplementary_groups(tree, user):
    ids = []
    for line in open(os.path.join(tree, "etc", "group")):
        fields = line.rstrip("\n").split(":")
        if len(fields) >= 4 and user in fields[3].split(","):
            ids.append(int(fields[2]))
    return ids


class Unit:
    """The [Service] of one unit file and its drop-ins, as systemd.service(5) and systemd.exec(5) read them."""

    def __init__(self, name, paths):
        self.name = name
        self.values = {}
        for path in paths:
            self._read(path)

    def _read(self, path):
        section = None
        for raw in _logical_lines(open(path, errors="replace").read()):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section != "Service" or "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            if value == "":
                self.values.pop(key, None)  # an empty assignment resets a list (systemd.unit(5))
            else:
                self.values.setdefault(key, []).append(value)

    def last(self, key, default=None):
        return self.values.get(key, [default])[-1]

    def all(self, key):
        return self.values.get(key, [])


def _logical_lines(text):
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def unit_paths(tree, link):
    """The unit file an enabled symlink (or a unit file) names inside the tree, and its drop-ins."""
    name = os.path.basename(link)
    if not os.path.islink(link):
        candidates = ["/" + os.path.relpath(link, tree)]
    else:
        target = os.readlink(link)
        candidates = [target] if os.path.isabs(target) else []
    candidates += ["/etc/systemd/system/" + name, "/lib/systemd/system/" + name, "/usr/lib/systemd/system/" + name]
    for candidate in candidates:
        path = os.path.join(tree, candidate.lstrip("/"))
        if os.path.isfile(path):
            dropins = []
            for folder in ("/lib/systemd/system/", "/usr/lib/systemd/system/", "/etc/systemd/system/"):
                dropins += sorted(glob.glob(os.path.join(tree, folder.lstrip("/"), name + ".d", "*.conf")))
            return [path] + dropins
    return []


def enabled_units(tree):
    found = {}
    for link in sorted(glob.glob(os.path.join(tree, "etc/systemd/system/*.target.wants/*.service"))):
        name = os.path.basename(link)
        if name in found or NOT_SUPERVISED.match(name):
            continue
        paths = unit_paths(tree, link)
        if paths:
            found[name] = Unit(name, paths)
    return list(found.values())


def environment_of(tree, unit, account):
    env = {"PATH": PATH, "LANG": "C.UTF-8", "INVOCATION_ID": unit.name}
    if account:
        env.update(HOME=account["home"], USER=account["name"], LOGNAME=account["name"], SHELL=account["shell"])
    for entry in unit.all("Environment"):
        for word in shlex.split(entry):
            if "=" in word:
                key, value = word.split("=", 1)
                env[key] = value
    # "Settings from these files override settings made with Environment=" (systemd.exec(5), EnvironmentFile=).
    for entry in unit.all("EnvironmentFile"):
        optional = entry.startswith("-")
        path = os.path.join(tree, entry.lstrip("-").lstrip("/"))
        try:
            text = open(path).read()
        except OSError:
            if optional:
                continue
            raise
        for line in _logical_lines(text):
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def command_line(text, env):
    """An Exec line's argv: its prefixes stripped, ${VAR} replaced in a word, a lone $VAR split into words."""
    ignore_failure = False
    while text and text[0] in "-@+!:":
        ignore_failure = ignore_failure or text[0] == "-"
        text = text[1:]
    argv = []
    for word in shlex.split(text):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            argv += env.get(word[1:], "").split()
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv, ignore_failure


# Exit status names a unit may give in SuccessExitStatus= and RestartPreventExitStatus= ("numeric termination
# statuses, termination status names, or termination signal names", systemd.service(5)): the LSB and BSD
# tables of systemd.exec(5), "Process Exit Codes", without their EXIT_ and EX_ prefixes.
EXIT_STATUS_NAMES = {
    "SUCCESS": 0, "FAILURE": 1,
    "INVALIDARGUMENT": 2, "NOTIMPLEMENTED": 3, "NOPERMISSION": 4, "NOTINSTALLED": 5, "NOTCONFIGURED": 6,
    "NOTRUNNING": 7,
    "USAGE": 64, "DATAERR": 65, "NOINPUT": 66, "NOUSER": 67, "NOHOST": 68, "UNAVAILABLE": 69, "SOFTWARE": 70,
    "OSERR": 71, "OSFILE": 72, "CANTCREAT": 73, "IOERR": 74, "TEMPFAIL": 75, "PROTOCOL": 76, "NOPERM": 77,
    "CONFIG": 78,
}
# Besides exit 0 and SuccessExitStatus=, a clean end of a service that is not Type=oneshot is death by "the
# signals SIGHUP, SIGINT, SIGTERM, and SIGPIPE" (systemd.service(5), SuccessExitStatus=).
CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}


def exit_statuses(unit, key):
    """A list of exit status definitions (SuccessExitStatus=, RestartPreventExitStatus=), as Popen return codes:
    a number or a status name is an exit code, a signal name (SIGUSR1, or USR1) the signal's negative number.
    The setting may be given more than once (the lists add up; an empty one resets them, as Unit reads it); a
    word that is none of these is said on the console and left out, as systemd logs and ignores it."""
    statuses = set()
    for entry in unit.all(key):
        for word in entry.split():
            signal_name = word if word.startswith("SIG") else "SIG" + word
            if word.isdigit() and int(word) <= 255:
                statuses.add(int(word))
            elif word in EXIT_STATUS_NAMES:
                statuses.add(EXIT_STATUS_NAMES[word])
            elif signal_name in signal.Signals.__members__:
                statuses.add(-signal.Signals[signal_name].value)
            else:
                say("%s: %s=%s: not an exit status or a signal name, ignored" % (unit.name, key, word))
    return statuses


def restarted_after(unit, rc):
    """Whether a main process that ended with Popen return code `rc` (-N: killed by signal N) is started again:
    the table under Restart= in systemd.service(5), then RestartPreventExitStatus=, which prevents a restart
    "regardless of the restart setting configured with Restart=". There is no watchdog or start timeout in a
    body, so on-abnormal and on-abort differ only there, and on-watchdog never restarts."""
    if rc in exit_statuses(unit, "RestartPreventExitStatus"):
        return False
    oneshot = unit.last("Type", "simple") == "oneshot"
    clean = rc == 0 or rc in exit_statuses(unit, "SuccessExitStatus") or (
        rc < 0 and not oneshot and -rc in CLEAN_SIGNALS)
    restart = unit.last("Restart", "no")
    return {"always": True, "on-success": clean, "on-failure": not clean,
            "on-abnormal": rc < 0 and not clean, "on-abort": rc < 0 and not clean}.get(restart, False)


class Runner:
    """One unit's life: ExecStartPre, then ExecStart, restarted as Restart= says (systemd.service(5)); stopped
    (SIGTERM to its process group) by `stop`, started again by `start`."""

    def __init__(self, body, name):
        self.body = body
        self.name = name
        self.thread = None
        self.process = None
        self.halt = threading.Event()

    @property
    def active(self):
        return self.thread is not None and self.thread.is_alive()

    def start(self):
        if self.active:
            return
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(self.halt,), name=self.name, daemon=True)
        self.thread.start()

    def stop(self):
        self.halt.set()
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except OSError:
                pass
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(5)
            if self.thread.is_alive() and process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.thread.join()

    def _run(self, halt):
        body = self.body
        unit = body.unit(self.name)  # read again at every start, as systemd does after daemon-reload
        if unit is None:
            say("%s: no such unit in the image" % self.name)
            return
        delay = float(re.sub(r"[^0-9.]", "", unit.last("RestartSec", "0.1")) or 0.1)
        user = unit.last("User")
        try:
            account = passwd_entry(body.tree, user) if user else None
            group = group_id(body.tree, unit.last("Group")) if unit.last("Group") else None
        except KeyError as missing:
            say("%s: %s" % (unit.name, missing.args[0]))
            return
        cwd = unit.last("WorkingDirectory", "~" if account else "/").lstrip("-")
        if cwd == "~":
            cwd = account["home"] if account else "/root"
        while not halt.is_set():
            env = environment_of(body.tree, unit, account)
            for entry in unit.last("RuntimeDirectory", "").split():
                path = os.path.join(body.tree, "run", entry)
                os.makedirs(path, exist_ok=True)
                if account:
                    os.chown(path, account["uid"], group if group is not None else account["gid"])
            ok = True
            for pre in unit.all("ExecStartPre"):
                argv, ignore = command_line(pre, env)
                try:
                    rc = body.spawn(argv, account, group, cwd, env).wait()
                except (OSError, subprocess.SubprocessError) as error:
                    say("%s: cannot start %s: %s" % (unit.name, argv[0], error))
                    rc = 203
                if rc != 0 and not ignore:
                    say("%s: ExecStartPre %s exited %d" % (unit.name, argv[0], rc))
                    ok = False
                    break
            rc = 1
            if ok:
                starts = unit.all("ExecStart")
                if not starts:
                    say("%s: no ExecStart" % unit.name)
                    return
                argv, _ = command_line(starts[-1], env)
                say("%s: starting %s" % (unit.name, " ".join(argv)))
                try:
                    self.process = body.spawn(argv, account, group, cwd, env)
                    rc = self.process.wait()
                except (OSError, subprocess.SubprocessError) as error:
                    say("%s: cannot start %s: %s" % (unit.name, argv[0], error))
                    rc = 203  # systemd's EXIT_EXEC
                if halt.is_set():
                    say("%s: stopped" % unit.name)
                    return
                ended = "killed by %s" % signal.Signals(-rc).name if rc < 0 else "exited %d" % rc
                say("%s: %s" % (unit.name, ended))
            if not restarted_after(unit, rc):
                return
            halt.wait(delay)


# The interpreter every cloud-init stage of a boot is forked from (StageRunner). It imports what /usr/bin/cloud-init
# runs (its console_scripts entry point, cloudinit.cmd.main:main) once; each stage is then a child of its own, in
# its own session, with the stage's arguments, that runs that entry point and exits as the script would. Python
# and cloud-init's imports are most of each stage's time (about 0.45 s of CPU of the 0.6 to 0.8 s a stage takes
# here: `python3 -X importtime`), paid once instead of four times.
STAGE_INTERPRETER = r"""
import json, os, resource, sys
from cloudinit.cmd.main import main
control, report = sys.stdin, os.fdopen(int(sys.argv[1]), "w")
usage = resource.getrusage(resource.RUSAGE_SELF)
report.write(json.dumps({"cpu": usage.ru_utime + usage.ru_stime}) + "\n")
report.flush()
for line in control:
    pid = os.fork()
    if pid == 0:
        report.close()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.setsid()
        sys.argv = ["/usr/bin/cloud-init"] + json.loads(line)
        sys.exit(main())
    report.write(json.dumps({"pid": pid}) + "\n")
    report.flush()
    _, status, usage = os.wait4(pid, 0)
    report.write(json.dumps({"status": os.waitstatus_to_exitcode(status),
                             "cpu": usage.ru_utime + usage.ru_stime}) + "\n")
    report.flush()
"""


class StageRunner:
    """Runs cloud-init's stages of one boot, one at a time, forked from STAGE_INTERPRETER in the tree."""

    def __init__(self, body):
        self.body = body
        read, write = os.pipe()
        self.process = body.spawn(["/usr/bin/python3", "-c", STAGE_INTERPRETER, str(write)],
                                  stdin=subprocess.PIPE, pass_fds=(write,))
        os.close(write)
        self.report = os.fdopen(read, "r")
        started = time.monotonic()
        ready = self.report.readline()
        if ready:
            say("cloud-init's interpreter ready after %.2fs (%.2fs of CPU)" % (time.monotonic() - started,
                                                                            json.loads(ready)["cpu"]))

    def run(self, arguments):
        """A stage's exit status (1 when the interpreter could not run it) and its CPU seconds."""
        try:
            self.process.stdin.write((json.dumps(arguments) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            return 1, 0.0
        started = self.report.readline()
        if not started:
            return 1, 0.0  # the interpreter ended: its traceback is on the console
        group = json.loads(started)["pid"]
        with self.body.lock:
            self.body.stages.append(group)
        ended = self.report.readline()
        with self.body.lock:
            self.body.stages.remove(group)
        if not ended:
            return 1, 0.0
        result = json.loads(ended)
        return result["status"], result["cpu"]

    def close(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait()
        self.report.close()


class Body:
    def __init__(self, config):
        self.tree = config["tree"]
        self.stopping = threading.Event()
        self.runners = {}  # unit name -> Runner
        self.lock = threading.Lock()
        self.stages = []  # the process group of the cloud-init stage running now
        self.stage_runner = None

    def spawn(self, argv, account=None, group=None, cwd="/", env=None, stdin=subprocess.DEVNULL, pass_fds=()):
        tree = self.tree
        groups = supplementary_groups(tree, account["name"]) if account else None  # read before the chroot

        def enter():
            os.setsid()
            os.chroot(tree)
            os.chdir("/")
            if account:
                gid = group if group is not None else account["gid"]
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(account["uid"])
            os.chdir(cwd)

        return subprocess.Popen(argv, preexec_fn=enter, env=env or {"PATH": PATH, "LANG": "C.UTF-8"},
                                stdin=stdin, close_fds=True, pass_fds=pass_fds)

    def unit(self, name):
        for folder in ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"):
            path = os.path.join(self.tree, folder, name)
            if os.path.isfile(os.path.join(self.tree, folder, name)) or os.path.islink(path):
                paths = unit_paths(self.tree, path)
                if paths:
                    return Unit(name, paths)
        return None

    def runner(self, name):
        name = name if "." in name else name + ".service"
        with self.lock:
            if name not in self.runners:
                self.runners[name] = Runner(self, name)
            return self.runners[name]

    def run_stage(self, argv):
        say("running %s" % " ".join(argv))
        started = time.monotonic()
        if self.stage_runner is None:
            self.stage_runner = StageRunner(self)
        rc, cpu = self.stage_runner.run(argv[1:])
        say("%s exited %d after %.2fs (%.2fs of CPU)" % (" ".join(argv), rc, time.monotonic() - started, cpu))
        return rc

    def control(self, words):
        """What the body's systemctl (body/systemctl) asks: VERB UNIT...; returns (exit status, text)."""
        verb, names = words[0], words[1:]
        if verb == "daemon-reload":
            return 0, ""  # every start reads the unit files again
        if verb == "is-active":
            states = ["active" if self.runner(n).active else "inactive" for n in names]
            return (0 if states and all(s == "active" for s in states) else 3), "\n".join(states) + "\n"
        restarts = ("restart", "reload", "reload-or-restart")  # no ExecReload here: a reload is a restart
        tries = ("try-restart", "try-reload-or-restart")
        if verb not in ("start", "stop") + restarts + tries:
            return 1, "the body's init does not know %r (it runs start, stop, restart, try-restart, reload, " \
                      "is-active and daemon-reload; the image's systemctl the rest)\n" % verb
        for name in names:
            runner = self.runner(name)
            if verb != "stop" and self.unit(runner.name) is None:
                return 5, "Unit %s not found.\n" % runner.name
            if verb == "stop" or verb in restarts or (verb in tries and runner.active):
                runner.stop()
            if verb == "start" or verb in restarts or (verb in tries and runner.thread is not None):
                runner.start()
            say("systemctl %s %s" % (verb, runner.name))
        return 0, ""

    def serve_control(self, path):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o600)  # root's, as systemd's private bus is
        server.listen(8)
        while not self.stopping.is_set():
            connection, _ = server.accept()
            with connection:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                try:
                    status, text = self.control(json.loads(data))
                except Exception as error:  # the answer names what went wrong; the body goes on
                    status, text = 1, "%s\n" % error
                connection.sendall(json.dumps([status, text]).encode() + b"\n")

    def serve_syslog(self, server):
        """/dev/log, where journald listens on an EC2 Ubuntu instance: what logger(1) and syslog(3) send (RFC 3164
        lines: cloud-init's host key fingerprints, which `logger -s` also writes to the console only once its
        message went out) goes to the tree's /var/log/syslog."""
        log_path = os.path.join(self.tree, "var", "log", "syslog")
        while not self.stopping.is_set():
            message = server.recv(65536).rstrip(b"\n\0")
            with open(log_path, "ab") as f:
                f.write(message + b"\n")

    def stop(self, *_):
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
            stages = list(self.stages)
        for group in stages:
            try:
                os.killpg(group, signal.SIGTERM)
            except OSError:
                pass
        for runner in runners:
            threading.Thread(target=runner.stop, daemon=True).start()


def main(argv):
    global LAUNCHED
    config = json.load(open(argv[0]))
    LAUNCHED = config.get("launched", LAUNCHED)
    tree = config["tree"]
    say("booting %s at %s" % (config["instance_id"], config["address"]))
    prepare_tree(tree, config["address"], config["seed"])
    body = Body(config)
    signal.signal(signal.SIGTERM, body.stop)
    signal.signal(signal.SIGINT, body.stop)
    install_systemctl(tree)
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound before the first stage starts
    syslog.bind(os.path.join(tree, "dev", "log"))
    os.chmod(os.path.join(tree, "dev", "log"), 0o666)
    threading.Thread(target=body.serve_syslog, args=(syslog,), name="syslog", daemon=True).start()
    threading.Thread(target=body.serve_control, args=(os.path.join(tree, "run", "kiln", "systemd.sock"),),
                     name="control", daemon=True).start()

    def boot():
        for stage in (["cloud-init", "init", "--local"], ["cloud-init", "init"]):
            if body.stopping.is_set() or body.run_stage(stage) != 0:
                say("%s failed" % " ".join(stage))
        for unit in enabled_units(tree):
            if not body.stopping.is_set():
                body.runner(unit.name).start()
        for stage in (["cloud-init", "modules", "--mode=config"], ["cloud-init", "modules", "--mode=final"]):
            if body.stopping.is_set():
                return
            if body.run_stage(stage) != 0:
                say("%s failed" % " ".join(stage))
        if body.stage_runner is not None:
            body.stage_runner.close()
        say("booted")

    threading.Thread(target=boot, name="boot", daemon=True).start()
    while not body.stopping.wait(0.5):
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(r.active for r in list(body.runners.values())):
        time.sleep(0.05)
    say("stopped")
    return 0


def install_systemctl(tree):
    """The body's systemctl: body/systemctl bind-mounted over the image's, in this mount namespace only (never in
    the tree, so never in an image made from it); the image's own stays reachable at /run/kiln/systemctl."""
    image_systemctl = None
    for candidate in ("usr/bin/systemctl", "bin/systemctl"):
        path = os.path.join(tree, candidate)
        if os.path.isfile(path) and not os.path.islink(path):
            image_systemctl = path
            break
    if image_systemctl is None:
        return
    real = os.path.join(tree, "run", "kiln", "systemctl")
    open(real, "w").close()
    mount(image_systemctl, real, bind=True)
    mount(os.path.join(HERE, "systemctl"), image_systemctl, bind=True)
    mount("none", image_systemctl, options="remount,bind,ro")


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
