import json
import re
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from standins.harness import running
from .conftest import client


def _auth(service):
    return ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/%s/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00" % service)


def raw(url, service, action=None, target=None, body=None):
    headers = {"Authorization": _auth(service)}
    if target:
        headers["X-Amz-Target"] = target
        headers["Content-Type"] = "application/x-amz-json-1.1"
        data = body or b"{}"
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        data = body or ("Action=%s&Version=2016-11-15" % action).encode()
    req = urllib.request.Request(url + "/", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def ctl(url, what, payload=None):
    if payload is None:
        with urllib.request.urlopen(url + "/__kiln_faults/" + what, timeout=5) as r:
            return json.loads(r.read())
    req = urllib.request.Request(url + "/__kiln_faults/" + what, data=json.dumps(payload).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def proxied(moto):
    with running("faults", "--upstream", moto["url"], "--seed", "1") as f:
        yield moto, f


def test_exact_fault_shapes(proxied):
    moto, f = proxied
    u = f["url"]
    ctl(u, "config", {"throttle": 1.0})
    st, h, body = raw(u, "ec2", "DescribeVpcs")
    assert st == 503
    assert re.fullmatch(r'<\?xml version="1.0" encoding="UTF-8"\?><Response><Errors><Error>'
                        r'<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>'
                        r'</Error></Errors><RequestID>%s</RequestID></Response>' % UUID, body), body
    for svc, ns in (("autoscaling", "http://autoscaling.amazonaws.com/doc/2011-01-01/"),
                    ("elasticloadbalancing", "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"),
                    ("sts", "https://sts.amazonaws.com/doc/2011-06-15/")):
        st, h, body = raw(u, svc, "DescribeThings")
        assert st == 400
        assert re.fullmatch(r'<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>Throttling</Code>'
                            r'<Message>Rate exceeded</Message></Error><RequestId>%s</RequestId>'
                            r'</ErrorResponse>' % (re.escape(ns), UUID), body), body
    st, h, body = raw(u, "ssm", target="AmazonSSM.GetParameter")
    assert st == 400 and json.loads(body) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    assert re.fullmatch(UUID, {k.lower(): v for k, v in h.items()}["x-amzn-requestid"])

    ctl(u, "config", {"throttle": 0, "error5xx": 1.0})
    st, h, body = raw(u, "ec2", "DescribeVpcs")
    assert st == 500 and "<Code>InternalError</Code>" in body and body.startswith("<?xml")
    st, h, body = raw(u, "autoscaling", "DescribeAutoScalingGroups")
    assert st == 500 and "<Code>InternalFailure</Code>" in body and "<ErrorResponse xmlns=" in body
    st, h, body = raw(u, "ssm", target="AmazonSSM.GetParameter")
    assert st == 500 and json.loads(body)["__type"] == "InternalServerError"

    s = ctl(u, "stats")
    assert s["faults"]["throttle"]["ec2"]["DescribeVpcs"] == 1
    assert s["faults"]["error5xx"]["ec2"]["DescribeVpcs"] == 1
    assert s["faults"]["throttle"]["ssm"]["GetParameter"] == 1
    assert s["calls"]["ec2"]["DescribeVpcs"] == 2
    assert s["forwarded"] == {}


def test_boto3_sees_faults_and_faulted_calls_never_reach_moto(proxied):
    moto, f = proxied
    direct = client("ec2", moto["url"])
    vpc = direct.create_vpc(CidrBlock="127.9.0.0/16")["Vpc"]["VpcId"]
    via = client("ec2", f["url"])
    ctl(f["url"], "config", {"throttle": 1.0, "only_actions": ["CreateTags"]})
    with pytest.raises(ClientError) as e:
        via.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])
    assert e.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert not direct.describe_tags(Filters=[{"Name": "resource-id", "Values": [vpc]}])["Tags"]
    via.describe_vpcs(VpcIds=[vpc])  # not in only_actions: forwarded

    ctl(f["url"], "config", {"throttle": 0, "error5xx": 1.0, "only_actions": None})
    with pytest.raises(ClientError) as e:
        via.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])
    assert e.value.response["Error"]["Code"] == "InternalError"
    for svc, code in (("autoscaling", "InternalFailure"), ("ssm", "InternalServerError")):
        with pytest.raises(ClientError) as e:
            c = client(svc, f["url"])
            c.describe_auto_scaling_groups() if svc == "autoscaling" else c.get_parameter(Name="x")
        assert e.value.response["Error"]["Code"] == code

    ctl(f["url"], "config", {"error5xx": 0, "drop": 1.0})
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        via.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])
    assert not direct.describe_tags(Filters=[{"Name": "resource-id", "Values": [vpc]}])["Tags"]

    s = ctl(f["url"], "stats")
    assert s["faults"]["throttle"]["ec2"]["CreateTags"] == 1
    assert s["faults"]["error5xx"]["ec2"]["CreateTags"] == 1
    assert s["faults"]["drop"]["ec2"]["CreateTags"] >= 1
    assert s["forwarded"]["ec2"]["DescribeVpcs"] == 1
    assert "CreateTags" not in s["forwarded"].get("ec2", {})

    ctl(f["url"], "config", {"drop": 0})
    via.create_tags(Resources=[vpc], Tags=[{"Key": "k", "Value": "v"}])
    assert direct.describe_tags(Filters=[{"Name": "resource-id", "Values": [vpc]}])["Tags"]
    ctl(f["url"], "reset", {})
    assert ctl(f["url"], "stats")["calls"] == {}


def test_a_given_error_code_in_the_services_shape_for_a_number_of_calls(proxied):
    """Auto Scaling's errors for a group busy with another activity, as its API
    Reference lists them (API_UpdateAutoScalingGroup.html, "Errors"):
    ScalingActivityInProgress is HTTP 400, ResourceContention HTTP 500."""
    moto, f = proxied
    u = f["url"]
    ctl(u, "config", {"error": {"code": "ScalingActivityInProgress", "status": 400, "times": 2},
                      "only_actions": ["DescribeAutoScalingGroups"]})
    asg = client("autoscaling", u)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            asg.describe_auto_scaling_groups()
        assert e.value.response["Error"]["Code"] == "ScalingActivityInProgress"
        assert e.value.response["Error"]["Type"] == "Sender"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "scaling activities in progress" in e.value.response["Error"]["Message"]
    asg.describe_auto_scaling_groups()  # the third call: forwarded
    s = ctl(u, "stats")
    assert s["faults"]["error"]["autoscaling"]["DescribeAutoScalingGroups"] == 2
    assert s["forwarded"]["autoscaling"]["DescribeAutoScalingGroups"] == 1
    assert s["config"]["error"]["times"] == 0

    ctl(u, "config", {"error": {"code": "ResourceContention", "status": 500}, "only_actions": None})
    st, h, body = raw(u, "autoscaling", "SetDesiredCapacity")
    assert st == 500
    assert re.fullmatch(r'<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error>'
                        r'<Type>Receiver</Type><Code>ResourceContention</Code><Message>You already have a '
                        r'pending update to an Amazon EC2 Auto Scaling resource \(for example, an Auto Scaling '
                        r'group, instance, or load balancer\).</Message></Error><RequestId>%s</RequestId>'
                        r'</ErrorResponse>' % UUID, body), body
    st, h, body = raw(u, "ec2", "DescribeVpcs")
    assert st == 500 and "<Response><Errors><Error><Code>ResourceContention</Code>" in body
    st, h, body = raw(u, "ssm", target="AmazonSSM.GetParameter")
    assert st == 500 and json.loads(body)["__type"] == "ResourceContention"

    ctl(u, "config", {"error": None})
    asg.describe_auto_scaling_groups()
    with pytest.raises(urllib.error.HTTPError) as bad:
        ctl(u, "config", {"error": {"code": "X", "status": 200}})
    assert bad.value.code == 400


def test_the_error_fault_from_the_command_line(moto):
    with running("faults", "--upstream", moto["url"], "--error", "ScalingActivityInProgress:400") as f:
        with pytest.raises(ClientError) as e:
            client("autoscaling", f["url"]).describe_auto_scaling_groups()
        assert e.value.response["Error"]["Code"] == "ScalingActivityInProgress"
        assert ctl(f["url"], "stats")["config"]["error"] == {
            "code": "ScalingActivityInProgress", "status": 400, "p": 1.0, "times": None}


def test_other_services_throttle_via_boto3(proxied):
    moto, f = proxied
    ctl(f["url"], "config", {"throttle": 1.0})
    for svc, call in (("autoscaling", lambda c: c.describe_auto_scaling_groups()),
                      ("elbv2", lambda c: c.describe_target_groups()),
                      ("sts", lambda c: c.get_caller_identity()),
                      ("ssm", lambda c: c.get_parameter(Name="x"))):
        with pytest.raises(ClientError) as e:
            call(client(svc, f["url"]))
        want = "ThrottlingException" if svc == "ssm" else "Throttling"
        assert e.value.response["Error"]["Code"] == want, svc
    s = ctl(f["url"], "stats")
    assert s["faults"]["throttle"]["elasticloadbalancing"]["DescribeTargetGroups"] == 1
    assert s["faults"]["throttle"]["sts"]["GetCallerIdentity"] == 1


def test_forwards_untouched_with_signature_verification_and_latency():
    with running("moto", "--verify-signatures", "3") as m, \
            running("faults", "--upstream", m["url"], "--latency-ms", "200,250") as f:
        iam = client("iam", m["url"])
        iam.create_user(UserName="kiln")
        iam.put_user_policy(UserName="kiln", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="kiln")["AccessKey"]
        kw = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        ec2 = client("ec2", f["url"], **kw)
        t0 = time.monotonic()
        vpc = ec2.create_vpc(CidrBlock="127.8.0.0/16")["Vpc"]["VpcId"]
        assert time.monotonic() - t0 >= 0.2
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "a", "Value": "b" * 5000}])  # bigger body
        assert client("ssm", f["url"], **kw).put_parameter(Name="p", Value="v", Type="String")
        bad = client("ec2", f["url"], aws_access_key_id=key["AccessKeyId"], aws_secret_access_key="x" * 40)
        with pytest.raises(ClientError):
            bad.describe_vpcs()
        s = ctl(f["url"], "stats")
        assert s["forwarded"]["ec2"] == {"CreateVpc": 1, "CreateTags": 1, "DescribeVpcs": 1}
        assert s["forwarded"]["ssm"] == {"PutParameter": 1}
        assert s["faults"] == {"throttle": {}, "error5xx": {}, "drop": {}, "error": {}}
