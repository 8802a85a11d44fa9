import ipaddress
import json
import time
import urllib.error
import urllib.request


from standins.harness import run_oneshot, running
from standins.world import app_ami_tags, build_world, register_app_ami
from .conftest import client

NET = ipaddress.ip_network("127.0.0.0/16")


def get(url, timeout=2):
    """(status, body-json) or (None, None) when nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, None


def wait_for(pred, timeout=10, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met within %ss" % timeout)


def test_world_cli_builds_terraform_shaped_output(moto):
    out = run_oneshot("world", "--endpoint", moto["url"], "--desired", "2")
    for k in ("vpc_id", "subnet_ids", "security_group_id", "app_ami_id"):
        assert set(out[k]) == {"sensitive", "type", "value"} and out[k]["sensitive"] is False
    assert out["subnet_ids"]["type"] == ["list", "string"] and len(out["subnet_ids"]["value"]) == 2
    assert out["vpc_id"]["type"] == "string"
    ec2, asg = client("ec2", moto["url"]), client("autoscaling", moto["url"])
    ami = out["app_ami_id"]["value"]
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[ami])["Images"][0]["Tags"]}
    assert tags["kiln:app"] == "demo" and tags["kiln:role"] == "app"
    for env in ("test", "live"):
        for k in ("asg_name", "launch_template_id", "launch_template_name", "target_group_arn"):
            assert out["%s_%s" % (env, k)]["type"] == "string"
        g = asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[out[env + "_asg_name"]["value"]])["AutoScalingGroups"][0]
        assert g["DesiredCapacity"] == 2 and g["MinSize"] == 2 and g["MaxSize"] == 4
        assert g["LaunchTemplate"]["Version"] == "1"
        assert g["TargetGroupARNs"] == [out[env + "_target_group_arn"]["value"]]
        ids = [i["InstanceId"] for i in g["Instances"]]
        assert len(ids) == 2
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for i in r["Instances"]:
                assert ipaddress.ip_address(i["PrivateIpAddress"]) in NET
                assert i["ImageId"] == ami
                itags = {t["Key"]: t["Value"] for t in i["Tags"]}
                assert itags["kiln:environment"] == env


def test_fleet_healthy_with_boot_delay_then_terminated(moto):
    with running("fleet", "--endpoint", moto["url"], "--poll", "0.1") as fleet:
        port = fleet["health_port"]
        out = build_world(moto["url"], environments=["test"], desired=1, health="healthy",
                          boot_delay=1.5, health_port=port)
        ec2 = client("ec2", moto["url"])
        asg = client("autoscaling", moto["url"])
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[out["test_asg_name"]["value"]])
        iid = g["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
        ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
        assert ip.startswith("127.0.")
        url = "http://%s:%d/health" % (ip, port)
        status, body = wait_for(lambda: (lambda r: r if r[0] else None)(get(url)), 5)
        assert status == 503 and body["instance_id"] == iid and body["image_id"] == out["app_ami_id"]["value"]
        wait_for(lambda: get(url)[0] == 200, 5)
        assert get("http://%s:%d/anything" % (ip, port))[0] == 200
        st, listing = get(fleet["url"] + "/instances")
        assert st == 200
        mine = [x for x in listing if x["instance_id"] == iid][0]
        assert mine["private_ip"] == ip and mine["health"] == "healthy" and mine["serving_since"]
        # terminate all ASG instances outside of the ASG's control: delete the ASG
        asg.delete_auto_scaling_group(AutoScalingGroupName=out["test_asg_name"]["value"],
                                      ForceDelete=True)
        ec2.terminate_instances(InstanceIds=[iid])
        wait_for(lambda: get(url)[0] is None, 5)
        assert iid not in [x["instance_id"] for x in get(fleet["url"] + "/instances")[1]]


def _instance_url(moto, health, port, **kw):
    ec2 = client("ec2", moto["url"])
    ami = register_app_ami(ec2, "ami-%s-%f" % (health, time.time()), app_ami_tags(health=health, **kw))
    inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                             SubnetId=_subnet(ec2))["Instances"][0]
    assert inst["PrivateIpAddress"].startswith("127.")
    return "http://%s:%d/health" % (inst["PrivateIpAddress"], port)


def _subnet(ec2):
    subs = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["127.0.3.0/24"]}])["Subnets"]
    if subs:
        return subs[0]["SubnetId"]
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.3.0/24")["Subnet"]["SubnetId"]


def test_fleet_never_and_flap(moto):
    with running("fleet", "--endpoint", moto["url"], "--poll", "0.1") as fleet:
        port = fleet["health_port"]
        never = _instance_url(moto, "never", port)
        flap = _instance_url(moto, "flap", port, boot_delay=0, flap_period=0.5)
        wait_for(lambda: get(never)[0] is not None and get(flap)[0] is not None, 5)
        seen_never, seen_flap = set(), []
        t_end = time.monotonic() + 2.6
        while time.monotonic() < t_end:
            seen_never.add(get(never)[0])
            s = get(flap)[0]
            if not seen_flap or seen_flap[-1] != s:
                seen_flap.append(s)
            time.sleep(0.05)
        assert seen_never == {503}
        # alternates: at least 200 -> 503 -> 200 -> 503 transitions
        assert set(seen_flap) == {200, 503} and len(seen_flap) >= 4, seen_flap



def test_fleet_fails_exactly_the_probes_it_is_told_to(moto):
    """kiln:fleet-fail-probes: an otherwise healthy instance answers 503 to
    exactly those probes (counted from 1 after the boot delay), so that a
    gate's unhealthy threshold can be tried on one dropped check."""
    with running("fleet", "--endpoint", moto["url"], "--poll", "0.1") as fleet:
        port = fleet["health_port"]
        ec2 = client("ec2", moto["url"])
        one = _instance_url(moto, "healthy", port)
        ami = register_app_ami(ec2, "ami-fail-probes-%f" % time.time(),
                               app_ami_tags() + [{"Key": "kiln:fleet-fail-probes", "Value": "3,5, 6"}])
        inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 SubnetId=_subnet(ec2))["Instances"][0]
        url = "http://%s:%d/health" % (inst["PrivateIpAddress"], port)

        def listing():
            return {x["instance_id"]: x for x in get(fleet["url"] + "/instances")[1] or []}
        # Waited for through the control endpoint, which is no probe.
        while not (listing().get(inst["InstanceId"], {}).get("listening") and get(one)[0] == 200):
            time.sleep(0.05)
        assert [get(url)[0] for _ in range(8)] == [200, 200, 503, 200, 503, 503, 200, 200]
        mine = listing()[inst["InstanceId"]]
        assert mine["probes"] == 8 and mine["failed_probes"] == [3, 5, 6]
        assert listing()[next(i for i, x in listing().items() if i != inst["InstanceId"])]["failed_probes"] == []

def test_a_world_of_200_has_addresses_for_a_rotation_and_the_fleet_serves_them_all():
    # moto puts a group's instances in its first subnet and keeps terminated instances' addresses: a /24 (251
    # usable) ran out when a 200-instance group surged by a batch (moto: "pop from an empty set", HTTP 500).
    with running("moto") as moto, running("fleet", "--endpoint", moto["url"], "--poll", "0.2") as fleet:
        port = int(fleet["health_port"])
        out = run_oneshot("world", "--endpoint", moto["url"], "--desired", "200", "--environments", "test",
                          "--health-port", str(port))
        asg, ec2 = client("autoscaling", moto["url"]), client("ec2", moto["url"])
        name = out["test_asg_name"]["value"]
        asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=260)  # a surge of 60: 260 > 251
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        ids = [i["InstanceId"] for i in group["Instances"]]
        assert len(ids) == 260
        addresses = set()
        for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
            for r in page["Reservations"]:
                addresses.update(i["PrivateIpAddress"] for i in r["Instances"])
        assert len(addresses) == 260 and all(ipaddress.ip_address(a) in NET for a in addresses)

        def serving():
            status, listing = get(fleet["url"].rstrip("/") + "/instances", timeout=30)
            return status == 200 and sum(1 for i in listing if i["healthy_now"]) == 260
        wait_for(serving, timeout=300, step=0.5)
        some = sorted(addresses)[::50]
        assert all(get("http://%s:%d/health" % (a, port))[0] == 200 for a in some)
