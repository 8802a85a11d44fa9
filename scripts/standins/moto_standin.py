"""`standin moto`: moto's server in-process (ThreadedMotoServer-like) on loopback.

    scripts/standin moto [--host 127.0.0.1] [--port 0] [--region us-east-1]
                         [--verify-signatures N] [--bodies [--images-dir DIR] [--apt-repo URL] [--release-image DIR]...]
                         [--no-stdin-watch] [-v]

Ready line: {"ready", "name": "moto", "url", "host", "port", "pid", "region",
             "verify_signatures_after": N or null}
  with --bodies also "bodies": true, "images_dir", "run_dir", "stop_seconds" (how long a stop may take:
  callers wait at least that long after SIGTERM before SIGKILL), "bodies_url" (GET it, or
  bodies_url + "/INSTANCE-ID", for each body's state, tree and console: standins/bodies.py), and
  "release_images": [{"image_id", "region", "version", "commit", "dir"}] for each --release-image.

--bodies gives instances of moto's stock Ubuntu images, and of images made from
them by CreateImage, a running body (scripts/standins/bodies.py; needs root and
the base root file system scripts/setup-rootfs makes in --images-dir, default
$KILN_IMAGES_DIR or .kiln-images). Without it, instances are records only (the
tag-driven fleet stand-in answers for them). --release-image DIR (with --bodies;
repeatable) registers a cached release (`standin release-image`, standins/release.py)
as an AMI in --region before the ready line, tagged as its bake tagged it, its
instances bodies of that tree.

--verify-signatures N sets INITIAL_NO_AUTH_ACTION_COUNT=N (before moto is
imported): the first N authorisable actions (any service, counted across the
whole server) are not checked; every later one must be SigV4-signed with an
access key that exists in moto's IAM (made e.g. by CreateUser + PutUserPolicy +
CreateAccessKey in those first N actions) and be allowed by its policies.
The count is global to the server, so any other client (e.g. the fleet
poller) uses up the N free actions too. Re-arm at run time with
`POST /moto-api/reset-auth` and the new N as the body (resets the count).
Failures seen: EC2 401 AuthFailure (bad signature and unknown key);
STS/Auto Scaling/ELBv2 403 SignatureDoesNotMatch / InvalidClientTokenId;
SSM 403 with a body botocore cannot parse (error code "403").
"""
import argparse
import os

from . import common


def main(argv):
    p = argparse.ArgumentParser(prog="standin moto", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(p)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--verify-signatures", type=int, default=None, metavar="N",
                   help="verify SigV4 after N unauthenticated actions (INITIAL_NO_AUTH_ACTION_COUNT)")
    p.add_argument("--signed-user", metavar="NAME", default=None,
                   help="make an IAM user NAME with an allow-all policy and an access key, then verify every "
                        "later call's SigV4 signature; the key is in the ready line "
                        "(access_key_id, secret_access_key, account_id)")
    p.add_argument("--bodies", action="store_true",
                   help="run a body for each instance of an image with a tree (standins/bodies.py)")
    p.add_argument("--images-dir", default=None, metavar="DIR",
                   help="the image store's folder (default $KILN_IMAGES_DIR or <repo>/.kiln-images)")
    p.add_argument("--apt-repo", default=None, metavar="URL",
                   help="with --bodies: every body's apt reads this loopback repository "
                        "(/etc/apt/sources.list.d/kiln-loopback.list, `deb [trusted=yes] URL ./`)")
    p.add_argument("--release-image", action="append", default=[], metavar="DIR",
                   help="with --bodies: register this cached release (standin release-image) as an AMI at start")
    a = p.parse_args(argv)
    if a.release_image and not a.bodies:
        p.error("--release-image needs --bodies (a release is a tree for instance bodies)")
    if a.apt_repo:
        common.check_loopback(a.apt_repo)
    if a.signed_user:
        # The three set-up calls below are the unauthenticated ones.
        a.verify_signatures = 3
    common.check_loopback(a.host)
    log = common.setup_logging("moto", a.verbose)
    common.fake_aws_env()
    os.environ["AWS_DEFAULT_REGION"] = a.region
    os.environ["AWS_REGION"] = a.region
    if a.verify_signatures is not None:
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(a.verify_signatures)
    else:
        os.environ.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)

    import threading
    from werkzeug.serving import make_server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    try:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
    except ImportError:  # older moto
        from werkzeug.serving import WSGIRequestHandler as MotoRequestHandler
    from moto import settings
    if a.verify_signatures is not None:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float(a.verify_signatures)

    _fix_launch_template_version_user_data()
    _honour_copy_image_encryption()
    _add_enable_image_deprecation()
    _fix_mixed_instances_policy_update()
    _honour_termination_lifecycle_hooks()
    _deregister_detached_instances()
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)
    # The lock sits around moto alone; the bodies' own path (/__kiln_bodies) is served beside it.
    app = _one_at_a_time(DomainDispatcherApplication(create_backend_app))
    store = None
    if a.bodies:
        from . import bodies, release
        images_dir = a.images_dir or bodies.default_images_dir()
        for folder in a.release_image:
            release.read_release(folder, images_dir)  # before anything is made: a stale one is refused
        store = bodies.ImageStore(images_dir, apt_repo=a.apt_repo)
        if store.cleaned:
            log.info("cleaned up after crashed stand-ins: %s", ", ".join(store.cleaned))
        app = bodies.install(store)(app)
    server = make_server(a.host, a.port, app, threaded=True, request_handler=MotoRequestHandler)
    host, port = server.server_address[:2]
    t = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    t.start()
    url = "http://%s:%d" % (host, port)
    log.info("moto serving on %s", url)
    extra = {}
    try:
        if a.signed_user:
            extra = _make_signed_user(url, a.region, a.signed_user)
        if store is not None:
            # What a stop may take: every body's init at once gets STOP_TIMEOUT before SIGKILL, then the
            # unmounts. A caller that kills the stand-in sooner leaves mounts for the next start to clean.
            extra.update(bodies=True, images_dir=store.images_dir, run_dir=store.run_dir,
                         stop_seconds=bodies.STOP_TIMEOUT + 5,
                         bodies_url=url + "/__kiln_bodies",
                         release_images=[release.register(url, a.region, store, os.path.abspath(folder))
                                         for folder in a.release_image])
        common.announce("moto", url=url, host=host, port=port, region=a.region,
                        verify_signatures_after=a.verify_signatures, **extra)
        reason = lifetime.wait()
        log.info("stopping (%s)", reason)
        server.shutdown()
        server.server_close()
    finally:
        if store is not None:
            store.close()
    return 0


def _one_at_a_time(app):
    """moto's backends are not thread-safe: two requests on one group at once
    read and write its desired capacity and instance list without a lock, and
    a decrement is lost, a terminated instance is registered with a target
    group (400 InvalidTarget), or moto fails with HTTP 500
    (tests/test_moto_race.py). Requests are still read and answered on their
    own threads; moto itself runs one request at a time, body included."""
    import threading
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            _advance_lifecycle_actions()
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                getattr(body, "close", lambda: None)()
    return serialised


def _make_signed_user(url, region, name):
    """CreateUser, PutUserPolicy (allow all), CreateAccessKey: the key tests sign with."""
    import json
    import boto3
    iam = boto3.client("iam", endpoint_url=url, region_name=region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    user = iam.create_user(UserName=name)["User"]
    iam.put_user_policy(UserName=name, PolicyName="kiln-all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
            "user_arn": user["Arn"], "account_id": user["Arn"].split(":")[4]}


def _fix_launch_template_version_user_data():
    """moto 5.2.5's CreateLaunchTemplateVersion keeps LaunchTemplateData.UserData
    as it came (CreateLaunchTemplate decodes it with parse_user_data), so an
    Auto Scaling group launching from such a version fails an assertion with
    HTTP 500. Decode it the same way, as AWS does: like the mixed instances
    policy fix below, a change the stand-in makes to moto only to match
    AWS's behaviour."""
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data
    original = LaunchTemplates._get_param

    def create_launch_template_version(self):
        def get_param(name, default=None, *args, **kwargs):
            value = original(self, name, default, *args, **kwargs)
            if name == "LaunchTemplateData" and isinstance(value, dict) and value.get("UserData") is not None:
                value = dict(value)
                value["UserData"] = parse_user_data(original(self, "LaunchTemplateData.UserData"))
            return value
        self._get_param = get_param  # an instance attribute: called unbound
        try:
            return _original_create_version(self)
        finally:
            del self._get_param

    _original_create_version = LaunchTemplates.create_launch_template_version
    if not getattr(LaunchTemplates, "_kiln_user_data_fix", False):
        LaunchTemplates.create_launch_template_version = create_launch_template_version
        LaunchTemplates._kiln_user_data_fix = True


def _honour_copy_image_encryption():
    """moto 5.2.5's CopyImage ignores Encrypted and KmsKeyId: the copy's
    snapshot is never encrypted. Give it what AWS does (EC2 API reference,
    CopyImage: "Encrypted: Specifies whether the destination snapshots of
    the copied image should be encrypted"; "KmsKeyId: ... If you specify a
    KMS key, you must also set the encrypted state to true"; the key may be
    given as key id, key ARN, alias name or alias ARN, and is looked up in
    the destination region): the copy's snapshot is encrypted, its KmsKeyId
    the key's ARN from moto's KMS in that region. KmsKeyId without Encrypted
    is AWS's InvalidParameterDependency. What moto still does not check:
    whether the caller may use the key, and KMS grants for other accounts."""
    from moto.ec2.exceptions import InvalidParameterDependency
    from moto.ec2.responses.amis import AmisResponse
    from moto.kms import kms_backends

    if getattr(AmisResponse, "_kiln_copy_encryption", False):
        return
    original = AmisResponse.copy_image

    def copy_image(self):
        encrypted = self._get_bool_param("Encrypted", False)
        key = self._get_param("KmsKeyId")
        if key and not encrypted:
            raise InvalidParameterDependency("KmsKeyId", "Encrypted")
        result = original(self)
        if encrypted:
            image = self.ec2_backend.amis[result.result["ImageId"]]
            arn = None
            if key:
                kms = kms_backends[self.current_account][self.region]
                arn = kms.describe_key(kms.any_id_to_key_id(key)).arn
            image.ebs_snapshot.encrypted = True
            image.ebs_snapshot.kms_key_id = arn
        return result

    AmisResponse.copy_image = copy_image
    AmisResponse._kiln_copy_encryption = True


def _add_enable_image_deprecation():
    """moto 5.2.5 has no EnableImageDeprecation ("not been implemented").
    Give it the part Kiln uses (EC2 API reference, EnableImageDeprecation:
    `ImageId`, `DeprecateAt` "in UTC, in the following format:
    YYYY-MM-DDTHH:MM:SSZ. If you specify a value for seconds, Amazon EC2
    rounds the seconds to the nearest minute"; DescribeImages then reports
    the image's `DeprecationTime`). Not given: the refusal of a date in the
    past or more than 10 years ahead, and DisableImageDeprecation."""
    from datetime import datetime, timedelta
    from moto.core.responses import ActionResult
    from moto.ec2.responses.amis import AmisResponse

    if hasattr(AmisResponse, "enable_image_deprecation"):
        return

    def enable_image_deprecation(self):
        image = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
        at = self._get_param("DeprecateAt")  # moto parses timestamps by the API's model
        if isinstance(at, str):
            at = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")
        at = at.replace(second=0) + timedelta(minutes=1 if at.second >= 30 else 0)
        image.deprecation_time = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return ActionResult({"Return": True})

    AmisResponse.enable_image_deprecation = enable_image_deprecation


def _fix_mixed_instances_policy_update():
    """moto 5.2.5's UpdateAutoScalingGroup sets the group's MixedInstancesPolicy
    to whatever the request holds: a request that names only sizes drops the
    policy, one that names only its launch template drops its overrides and
    instances distribution. AWS changes only what a request names ("Any
    properties that you don't specify are not changed by this update request",
    EC2 Auto Scaling API Reference, UpdateAutoScalingGroup): merge the
    request's policy into the group's, lists and the launch template
    specification replaced whole, as AWS does."""
    import copy
    from moto.autoscaling.models import FakeAutoScalingGroup

    def merged(current, given):
        if not isinstance(current, dict) or not isinstance(given, dict):
            return copy.deepcopy(given)
        out = copy.deepcopy(current)
        for key, value in given.items():
            # A launch template specification is one value (an id or a name,
            # and a version): replaced whole, never mixed with the old one.
            whole = key == "LaunchTemplateSpecification"
            out[key] = copy.deepcopy(value) if whole else merged(current.get(key), value)
        return out

    original = FakeAutoScalingGroup.update

    def update(self, *args, **kwargs):
        given = kwargs.get("mixed_instances_policy")
        kept = self.mixed_instances_policy
        if kept is None or kwargs.get("launch_template"):
            return original(self, *args, **kwargs)
        policy = merged(kept, given if given is not None else {})
        spec = policy.get("LaunchTemplate", {}).get("LaunchTemplateSpecification", {})
        if spec.get("LaunchTemplateId"):
            spec.pop("LaunchTemplateName", None)  # moto stores both; it accepts one
        kwargs["mixed_instances_policy"] = policy
        return original(self, *args, **kwargs)

    if not getattr(FakeAutoScalingGroup, "_kiln_mixed_policy_fix", False):
        FakeAutoScalingGroup.update = update
        FakeAutoScalingGroup._kiln_mixed_policy_fix = True


# Lifecycle hooks for termination (moto 5.2.5 stores them and never acts on
# them, and answers CompleteLifecycleAction with HTTP 500). What AWS does,
# from the Amazon EC2 Auto Scaling User Guide, "How lifecycle hooks work"
# (lifecycle-hooks-overview.html) and "Complete a lifecycle action"
# (completing-lifecycle-hooks.html), and the API Reference for
# CompleteLifecycleAction and RecordLifecycleActionHeartbeat:
# - an instance the group terminates (scale-in, TerminateInstanceInAutoScalingGroup)
#   while the group has an autoscaling:EC2_INSTANCE_TERMINATING hook goes to
#   Terminating:Wait and stays there until the action is completed or the
#   hook's HeartbeatTimeout ends (default 3600 s), then Terminating:Proceed,
#   then it is terminated;
# - RecordLifecycleActionHeartbeat restarts the timeout, never past the
#   global timeout (100 times the heartbeat timeout or 48 hours, whichever is smaller);
# - on a terminating instance both results let it terminate: CONTINUE lets the
#   group's other hooks finish first, ABANDON stops the remaining ones;
# - an instance in a wait state is not InService: it does not count toward the
#   capacity the group keeps, and the group does not pick it for scale-in again.
# A Terminating:Proceed instance is shown by one request after the one that
# put it there, then terminated; moto has no notification targets, so no
# token is ever sent: CompleteLifecycleAction names the instance (a token
# of our own, kiln-<instance>, is accepted too).
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
GLOBAL_TIMEOUT = 172800


def _termination_hooks(group):
    return [hook for hook in group.autoscaling_backend.lifecycle_hooks.values()
            if hook.auto_scaling_group_name == group.name and hook.lifecycle_transition == TERMINATING]


def _hold(state, hooks):
    """Put an instance state in Terminating:Wait for these hooks."""
    import time
    now = time.time()
    state.lifecycle_state = "Terminating:Wait"
    state.kiln_waiting_on = {hook.name: now + hook.heartbeat_timeout for hook in hooks}
    state.kiln_global_deadline = now + min(GLOBAL_TIMEOUT, 100 * max(h.heartbeat_timeout for h in hooks))
    state.kiln_proceed_seen = False


def _proceed(state):
    state.lifecycle_state = "Terminating:Proceed"
    state.kiln_waiting_on = {}
    state.kiln_proceed_seen = False


def _advance_lifecycle_actions():
    """Before each request: timed-out waits proceed, and instances that were
    seen in Terminating:Proceed are terminated and leave their group."""
    import time
    from moto.autoscaling.models import autoscaling_backends
    now = time.time()
    for account in list(autoscaling_backends.keys()):
        for region in list(autoscaling_backends[account].keys()):
            backend = autoscaling_backends[account][region]
            for group in list(backend.autoscaling_groups.values()):
                gone = []
                for state in group.instance_states:
                    if state.lifecycle_state == "Terminating:Proceed":
                        if state.kiln_proceed_seen:
                            gone.append(state)
                        else:
                            state.kiln_proceed_seen = True
                    elif state.lifecycle_state == "Terminating:Wait":
                        waiting = {name: at for name, at in state.kiln_waiting_on.items() if at > now}
                        if not waiting or now >= state.kiln_global_deadline:
                            _proceed(state)
                            state.kiln_proceed_seen = True  # this request shows it
                if gone:
                    group.instance_states = [s for s in group.instance_states if s not in gone]
                    backend.ec2_backend.terminate_instances([s.instance.id for s in gone])


def _honour_termination_lifecycle_hooks():
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, TerminateInstanceActivity
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    if getattr(FakeAutoScalingGroup, "_kiln_lifecycle_hooks", False):
        return
    original_set_desired = FakeAutoScalingGroup.set_desired_capacity

    def set_desired_capacity(self, new_capacity):
        # moto picks what to scale in from every unprotected instance state,
        # including ones already leaving: only InService instances are
        # candidates ("Use instance scale-in protection": protected ones never
        # are; a waiting one is already on its way out).
        leaving = [s for s in self.instance_states if s.lifecycle_state != "InService"]
        kept = {s: s.protected_from_scale_in for s in leaving}
        for state in leaving:
            state.protected_from_scale_in = True
        hooks = _termination_hooks(self)
        before = list(self.instance_states)
        ec2 = self.autoscaling_backend.ec2_backend
        if hooks:
            ec2.terminate_instances = lambda ids: []  # held instead, below
        try:
            original_set_desired(self, new_capacity)
        finally:
            if hooks:
                del ec2.terminate_instances
            for state, protected in kept.items():
                state.protected_from_scale_in = protected
        if hooks:
            # Back in the group, waiting; instances it launched stay too.
            chosen = [s for s in before if s not in self.instance_states]
            for state in chosen:
                _hold(state, hooks)
            self.instance_states = self.instance_states + chosen

    original_terminate = AutoScalingBackend.terminate_instance

    def terminate_instance(self, instance_id, should_decrement):
        state = next((s for g in self.autoscaling_groups.values() for s in g.instance_states
                      if s.instance.id == instance_id), None)
        hooks = _termination_hooks(state.auto_scaling_group) if state is not None else []
        if not hooks:
            return original_terminate(self, instance_id, should_decrement)
        group = state.auto_scaling_group
        original_size = group.desired_capacity
        if state.lifecycle_state == "InService":
            _hold(state, hooks)
            if should_decrement:
                group.desired_capacity -= 1
            # Without the decrement the group launches a replacement now.
            group.set_desired_capacity(group.desired_capacity)
        return TerminateInstanceActivity(state.instance, original_size)

    def waiting_state(backend, group_name, hook_name, instance_id, token):
        if not instance_id and token and token.startswith("kiln-"):
            instance_id = token[len("kiln-"):]
        group = backend.autoscaling_groups.get(group_name)
        hook = backend.lifecycle_hooks.get(f"{group_name}_{hook_name}")
        state = next((s for s in (group.instance_states if group else []) if s.instance.id == instance_id), None)
        if hook is None or state is None or hook_name not in getattr(state, "kiln_waiting_on", {}):
            # AWS's answer when there is nothing to complete.
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
        return hook, state

    def complete_lifecycle_action(self):
        hook, state = waiting_state(
            self.autoscaling_backend, self._get_param("AutoScalingGroupName"),
            self._get_param("LifecycleHookName"), self._get_param("InstanceId"),
            self._get_param("LifecycleActionToken"))
        result = self._get_param("LifecycleActionResult")
        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError("LifecycleActionResult must be CONTINUE or ABANDON")
        state.kiln_waiting_on.pop(hook.name, None)
        if result == "ABANDON" or not state.kiln_waiting_on:
            _proceed(state)
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self):
        import time
        hook, state = waiting_state(
            self.autoscaling_backend, self._get_param("AutoScalingGroupName"),
            self._get_param("LifecycleHookName"), self._get_param("InstanceId"),
            self._get_param("LifecycleActionToken"))
        state.kiln_waiting_on[hook.name] = min(time.time() + hook.heartbeat_timeout, state.kiln_global_deadline)
        return EmptyResult()

    FakeAutoScalingGroup.set_desired_capacity = set_desired_capacity
    AutoScalingBackend.terminate_instance = terminate_instance
    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
    AutoScalingResponse.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat
    FakeAutoScalingGroup._kiln_lifecycle_hooks = True


def _deregister_detached_instances():
    """moto 5.2.5's DetachInstances leaves the instances registered in the
    group's target groups. AWS deregisters them (API Reference,
    DetachInstances: "If there are target groups attached to the Auto
    Scaling group, the instances are deregistered from the target groups")."""
    from moto.autoscaling.models import AutoScalingBackend

    if getattr(AutoScalingBackend, "_kiln_detach_deregisters", False):
        return
    original = AutoScalingBackend.detach_instances

    def detach_instances(self, group_name, instance_ids, should_decrement):
        group = self.autoscaling_groups[group_name]
        held = {s.instance.id for s in group.instance_states}
        activities = original(self, group_name, instance_ids, should_decrement)
        detached = [i for i in instance_ids if i in held]
        for arn in group.target_group_arns if detached else []:
            target_group = self.elbv2_backend.target_groups.get(arn)
            if target_group is not None:
                registered = {t for t in target_group.targets}
                gone = [{"Id": i} for i in detached if i in registered]
                if gone:
                    self.elbv2_backend.deregister_targets(arn, gone)
        return activities

    AutoScalingBackend.detach_instances = detach_instances
    AutoScalingBackend._kiln_detach_deregisters = True
