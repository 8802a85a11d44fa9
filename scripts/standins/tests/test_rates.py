"""The fault proxy's model of AWS's token buckets (faults.AwsRates), on a clock the test moves, and through the
proxy in front of moto. The numbers are EC2's published ones ("Request throttling for the Amazon EC2 API",
https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html); Auto Scaling's are the same shape
(AWS publishes none)."""
import re

import pytest

from standins.faults import AwsRates
from standins.harness import running
from .test_faults import ctl, raw


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def rates():
    clock = Clock()
    return AwsRates(clock), clock


def burst(model, service, action, params=None, n=1000):
    """How many requests in a row the buckets admit before the first refusal (at one instant)."""
    admitted = 0
    while admitted < n and model.admit(service, action, params or {}):
        admitted += 1
    return admitted


def test_unfiltered_describe_instances_has_the_small_bucket_and_refills_at_ten_a_second(rates):
    model, clock = rates
    assert burst(model, "ec2", "DescribeInstances") == 50
    assert not model.admit("ec2", "DescribeInstances", {})
    clock.now += 0.1  # 10 a second: one token
    assert burst(model, "ec2", "DescribeInstances") == 1
    # With a filter, or paginated, the same action takes tokens from the standard non-mutating bucket.
    assert burst(model, "ec2", "DescribeInstances", {"Filter.1.Name": ["tag:x"]}) == 100
    clock.now += 1.0  # 20 a second
    assert burst(model, "ec2", "DescribeInstances", {"MaxResults": ["5"]}) == 20


def test_each_action_has_its_own_bucket_of_its_category(rates):
    model, clock = rates
    assert burst(model, "ec2", "CreateTags") == 100       # uncategorized: 100 / 10
    assert burst(model, "ec2", "DeleteTags") == 100       # its own bucket, untouched by CreateTags
    assert burst(model, "ec2", "DescribeImages") == 100   # non-mutating: 100 / 20
    assert burst(model, "ec2", "CreateLaunchTemplateVersion") == 100
    assert burst(model, "ec2", "ModifyInstanceAttribute") == 50   # mutating: 50 / 5
    assert burst(model, "ec2", "AuthorizeSecurityGroupIngress") == 50   # resource-intensive: 50 / 5
    clock.now += 1.0
    assert burst(model, "ec2", "CreateTags") == 10
    assert burst(model, "ec2", "ModifyInstanceAttribute") == 5
    assert burst(model, "ec2", "CreateLaunchTemplateVersion") == 5


def test_a_bucket_never_holds_more_than_its_capacity_and_refused_requests_cost_nothing(rates):
    model, clock = rates
    assert burst(model, "ec2", "ModifyInstanceAttribute") == 50
    for _ in range(100):
        assert not model.admit("ec2", "ModifyInstanceAttribute", {})  # refused: no token taken
    clock.now += 0.4  # 5 a second: two tokens, not minus a hundred
    assert burst(model, "ec2", "ModifyInstanceAttribute") == 2
    clock.now += 3600
    assert burst(model, "ec2", "ModifyInstanceAttribute") == 50


def test_instance_actions_also_need_a_token_per_instance(rates):
    model, clock = rates
    six_hundred = {"InstanceId.%d" % i: ["i-%d" % i] for i in range(1, 601)}
    assert model.admit("ec2", "TerminateInstances", six_hundred)      # 1000 - 600 = 400 left
    assert not model.admit("ec2", "TerminateInstances", six_hundred)  # the request bucket has tokens, not this
    clock.now += 10  # 20 instances a second: 400 + 200
    assert model.admit("ec2", "TerminateInstances", six_hundred)
    assert model.admit("ec2", "RunInstances", {"MinCount": ["1"], "MaxCount": ["1000"]})
    assert not model.admit("ec2", "RunInstances", {"MinCount": ["1"], "MaxCount": ["1"]})
    clock.now += 0.5  # 2 instances a second
    assert model.admit("ec2", "RunInstances", {"MinCount": ["1"], "MaxCount": ["1"]})


def test_auto_scaling_has_buckets_of_the_same_shape_and_other_services_are_not_metered(rates):
    model, clock = rates
    assert burst(model, "autoscaling", "DescribeAutoScalingGroups") == 100
    assert burst(model, "autoscaling", "SetDesiredCapacity") == 50
    assert burst(model, "autoscaling", "TerminateInstanceInAutoScalingGroup") == 50
    clock.now += 1.0
    assert burst(model, "autoscaling", "DescribeAutoScalingGroups") == 20
    assert burst(model, "autoscaling", "SetDesiredCapacity") == 5
    assert burst(model, "elasticloadbalancing", "DescribeTargetHealth", n=500) == 500


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def until_throttled(u, service, code, limit=3000, **request):
    """Requests in a row until the first one answered with the throttling error `code`: (answers before it,
    that answer). Refill goes on meanwhile, so the count is at least the bucket's capacity."""
    for count in range(limit):
        status, _, body = raw(u, service, **request)
        if "<Code>%s</Code>" % code in body:
            return count, (status, body)
    pytest.fail("%s: no %s after %d requests" % (service, code, limit))


def test_the_proxy_answers_an_empty_bucket_with_the_services_own_throttling_error(moto):
    with running("faults", "--upstream", moto["url"], "--aws-rates") as f:
        u = f["url"]
        before, (status, body) = until_throttled(u, "ec2", "RequestLimitExceeded", action="DescribeInstances")
        assert before >= 50 and status == 503
        assert re.fullmatch(r'<\?xml version="1.0" encoding="UTF-8"\?><Response><Errors><Error>'
                            r'<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>'
                            r'</Error></Errors><RequestID>%s</RequestID></Response>' % UUID, body), body
        # Another action's bucket is full.
        assert raw(u, "ec2", "DescribeImages")[0] == 200
        # A mutating Auto Scaling action (50, 5 a second); moto refuses the unknown group with its own 400.
        form = b"Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=none&DesiredCapacity=1"
        before, (status, body) = until_throttled(u, "autoscaling", "Throttling", body=form)
        assert before >= 50 and status == 400
        assert re.fullmatch(r'<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error>'
                            r'<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>'
                            r'<RequestId>%s</RequestId></ErrorResponse>' % UUID, body), body
        stats = ctl(u, "stats")
        assert stats["faults"]["rate"]["ec2"]["DescribeInstances"] == 1
        assert stats["faults"]["rate"]["autoscaling"]["SetDesiredCapacity"] == 1
        assert stats["forwarded"]["autoscaling"]["SetDesiredCapacity"] == before
        assert stats["faults"]["throttle"] == {}  # no random throttling was asked for
        assert 0 <= stats["buckets"]["ec2:DescribeInstances (unfiltered)"] <= 50  # refilling since
        # Off again: nothing metered.
        ctl(u, "config", {"aws_rates": False})
        assert all(raw(u, "ec2", "DescribeInstances")[0] == 200 for _ in range(60))
