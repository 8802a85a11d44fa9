"""`standin moto`: moto's server in-process (ThreadedMotoServer-like) on loopback.

    scripts/standin moto [--host 127.0.0.1] [--port 0] [--region us-east-1]
                         [--verify-signatures N] [--no-stdin-watch] [-v]

Ready line: {"ready", "name": "moto", "url", "host", "port", "pid", "region",
             "verify_signatures_after": N or null}

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
    a = p.parse_args(argv)
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
    lifetime = common.Lifetime(watch_stdin=not a.no_stdin_watch)
    app = _one_at_a_time(DomainDispatcherApplication(create_backend_app))
    server = make_server(a.host, a.port, app, threaded=True, request_handler=MotoRequestHandler)
    host, port = server.server_address[:2]
    t = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    t.start()
    url = "http://%s:%d" % (host, port)
    log.info("moto serving on %s", url)
    extra = {}
    if a.signed_user:
        extra = _make_signed_user(url, a.region, a.signed_user)
    common.announce("moto", url=url, host=host, port=port, region=a.region,
                    verify_signatures_after=a.verify_signatures, **extra)
    reason = lifetime.wait()
    log.info("stopping (%s)", reason)
    server.shutdown()
    server.server_close()
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
    HTTP 500. Decode it the same way, as AWS does: the one change the
    stand-in makes to moto, and only to match AWS's behaviour."""
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
