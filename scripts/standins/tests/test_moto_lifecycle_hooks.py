"""The moto stand-in gives moto 5.2.5 the termination lifecycle hooks AWS
honours (moto stores hooks and never acts on them, and answers
CompleteLifecycleAction with HTTP 500), checks that its scale-in honours
scale-in protection, and deregisters detached instances from the group's
target groups. The rules, with their sources, are beside the code in
standins/moto_standin.py."""
import time

import pytest
from botocore.exceptions import ClientError

from standins.harness import running

from .conftest import client

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"


@pytest.fixture(scope="module")
def moto():
    """One stand-in for the module (starting moto is the slow part); each test has its own group."""
    with running("moto") as info:
        yield info


NAMES = iter("hooks%d" % n for n in range(100))


def _group(url, size=3, target_group=False):
    name = next(NAMES)
    ec2 = client("ec2", url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    extra = {}
    arn = None
    if target_group:
        arn = client("elbv2", url).create_target_group(
            Name=name, Protocol="HTTP", Port=8080, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
        extra["TargetGroupARNs"] = [arn]
    asg = client("autoscaling", url)
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=0, MaxSize=10, DesiredCapacity=size,
        VPCZoneIdentifier=subnet["SubnetId"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"},
        **extra)
    return asg, ec2, arn, name


def _states(asg, name):
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return group["DesiredCapacity"], {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def _ec2_state(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _hook(asg, group, name, timeout=300):
    asg.put_lifecycle_hook(
        LifecycleHookName=name, AutoScalingGroupName=group, LifecycleTransition=TERMINATING,
        HeartbeatTimeout=timeout, DefaultResult="CONTINUE")


def test_scale_in_with_a_termination_hook_waits_until_the_action_is_completed(moto):
    asg, ec2, _, group = _group(moto["url"])
    _hook(asg, group, "drain")
    _, states = _states(asg, group)
    keep = sorted(states)[0]
    asg.set_instance_protection(AutoScalingGroupName=group, InstanceIds=[keep], ProtectedFromScaleIn=True)
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
    desired, states = _states(asg, group)
    waiting = sorted(i for i, s in states.items() if s == "Terminating:Wait")
    assert desired == 1
    assert states[keep] == "InService", "the protected instance is never picked"
    assert len(waiting) == 2 and len(states) == 3, "no replacement for the waiting ones: %s" % states
    assert all(_ec2_state(ec2, i) == "running" for i in waiting)
    # Still waiting a while later: only the action (or the timeout) ends it.
    time.sleep(0.5)
    assert _states(asg, group)[1] == states
    asg.complete_lifecycle_action(
        LifecycleHookName="drain", AutoScalingGroupName=group, InstanceId=waiting[0],
        LifecycleActionResult="CONTINUE")
    assert _states(asg, group)[1][waiting[0]] == "Terminating:Proceed"
    _, after = _states(asg, group)
    assert waiting[0] not in after and after[waiting[1]] == "Terminating:Wait"
    assert _ec2_state(ec2, waiting[0]) in ("shutting-down", "terminated")
    assert _states(asg, group)[0] == 1
    # The group launches again when desired goes up, the waiting one still waiting.
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=3)
    desired, states = _states(asg, group)
    assert desired == 3 and states[waiting[1]] == "Terminating:Wait"
    assert sum(1 for s in states.values() if s == "InService") == 3, states


def test_continue_waits_for_the_other_hooks_and_abandon_does_not(moto):
    asg, _, _, group = _group(moto["url"], size=2)
    _hook(asg, group, "first")
    _hook(asg, group, "second")
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=0)
    a, b = sorted(_states(asg, group)[1])
    asg.complete_lifecycle_action(
        LifecycleHookName="first", AutoScalingGroupName=group, InstanceId=a, LifecycleActionResult="CONTINUE")
    assert _states(asg, group)[1][a] == "Terminating:Wait", "the second hook still holds it"
    asg.complete_lifecycle_action(
        LifecycleHookName="first", AutoScalingGroupName=group, InstanceId=b, LifecycleActionResult="ABANDON")
    assert _states(asg, group)[1][b] == "Terminating:Proceed", "ABANDON stops the remaining hooks"


def test_the_heartbeat_timeout_lets_the_instance_proceed(moto):
    asg, ec2, _, group = _group(moto["url"], size=1)
    _hook(asg, group, "short", timeout=1)
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=0)
    (only,) = _states(asg, group)[1]
    assert _states(asg, group)[1][only] == "Terminating:Wait"
    time.sleep(1.2)
    assert _states(asg, group)[1][only] == "Terminating:Proceed"
    assert only not in _states(asg, group)[1]
    assert _ec2_state(ec2, only) in ("shutting-down", "terminated")


def test_terminate_instance_in_the_group_waits_on_the_hook_too(moto):
    asg, _, _, group = _group(moto["url"], size=2)
    _hook(asg, group, "drain")
    first = sorted(_states(asg, group)[1])[0]
    asg.terminate_instance_in_auto_scaling_group(InstanceId=first, ShouldDecrementDesiredCapacity=True)
    desired, states = _states(asg, group)
    assert desired == 1 and states[first] == "Terminating:Wait" and len(states) == 2


def test_completing_an_action_that_is_not_there_is_a_validation_error(moto):
    asg, _, _, group = _group(moto["url"], size=1)
    _hook(asg, group, "drain")
    (only,) = _states(asg, group)[1]
    with pytest.raises(ClientError) as raised:
        asg.complete_lifecycle_action(
            LifecycleHookName="drain", AutoScalingGroupName=group, InstanceId=only,
            LifecycleActionResult="CONTINUE")
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_scale_in_without_hooks_terminates_only_unprotected_instances(moto):
    asg, ec2, _, group = _group(moto["url"])
    protected = sorted(_states(asg, group)[1])[:2]
    asg.set_instance_protection(AutoScalingGroupName=group, InstanceIds=protected, ProtectedFromScaleIn=True)
    asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=1)
    desired, states = _states(asg, group)
    # AWS scales in only what is not protected: the group keeps both protected ones.
    assert desired == 1 and sorted(states) == protected
    assert all(s == "InService" for s in states.values())


def test_detached_instances_leave_the_target_group(moto):
    asg, _, arn, group = _group(moto["url"], size=2, target_group=True)
    elb = client("elbv2", moto["url"])
    ids = sorted(_states(asg, group)[1])
    registered = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
    assert registered == set(ids)
    asg.detach_instances(AutoScalingGroupName=group, InstanceIds=[ids[0]], ShouldDecrementDesiredCapacity=True)
    registered = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
    assert registered == {ids[1]}
    assert _states(asg, group)[0] == 1
