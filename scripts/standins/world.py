"""`standin world`: build, in moto, what Kiln's Terraform would make; print `terraform output -json`.

    scripts/standin world --endpoint URL [--region us-east-1]
        [--environments test,live] [--desired 2] [--health-port 8080]
        [--health healthy|never|flap] [--boot-delay SECONDS] [--flap-period SECONDS]
        [--app demo] [--ami ID] [--subnets CIDR,CIDR] [--no-verify]

One-shot: prints one JSON object (the shape of `terraform output -json`) and exits 0.
Keys: vpc_id, subnet_ids, security_group_id, app_ami_id, region, and per
environment E: E_asg_name, E_launch_template_id, E_launch_template_name,
E_launch_template_version, E_target_group_arn.

--ami ID: the groups start on that image (a real earlier release: `standin moto --bodies --release-image DIR`
names it in its ready line) instead of one registered here for the fleet stand-in to answer for by its tags.
--subnets: the VPC's subnets (default 127.0.1.0/24,127.0.2.0/24, or wider ones from 127.0.16.0 for big
groups; moto gives instances addresses from the first): bodies of two worlds on one machine must not share an
address.

Library use: `build_world(endpoint, **opts) -> dict` (same dict).
Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment
(default "testing"), or credentials=(id, secret) — needed when moto runs with
--verify-signatures. Instance metadata is always disabled.
"""
import argparse
import ipaddress
import json
import sys
import time

from . import common

VPC_CIDR = "127.0.0.0/16"
SUBNETS = [("127.0.1.0/24", "a"), ("127.0.2.0/24", "b")]
# moto puts a group's instances in its first subnet and keeps a terminated instance's address: a world whose
# rotations need more addresses than a /24 holds (251 after AWS's five reserved ones: "Subnet CIDR blocks",
# https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html) gets wider subnets from 127.0.16.0 on.
SUBNET_ADDRESSES = 251


def subnets_for(addresses):
    """The world's subnets: SUBNETS, or two of the smallest size (a /23 or wider) holding `addresses`."""
    if addresses <= SUBNET_ADDRESSES:
        return SUBNETS
    prefix = 23
    while (1 << (32 - prefix)) - 5 < addresses:
        prefix -= 1
    size = 1 << (32 - prefix)
    first = ipaddress.ip_address("127.0.16.0")
    return [("%s/%d" % (first + i * size, prefix), az) for i, az in enumerate("ab")]


def _client(service, endpoint, region, credentials=None):
    """boto3 client on loopback; credentials = (key id, secret) or AWS_ACCESS_KEY_ID/... or "testing"."""
    common.fake_aws_env()
    import os
    import boto3
    key, secret = credentials or (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def _out(value):
    if isinstance(value, list):
        typ = ["list", "string"]
    elif isinstance(value, bool):
        typ = "bool"
    elif isinstance(value, (int, float)):
        typ = "number"
    else:
        typ = "string"
    return {"sensitive": False, "type": typ, "value": value}


def app_ami_tags(app="demo", health="healthy", boot_delay=0.0, flap_period=1.0):
    return [
        {"Key": "kiln:app", "Value": app},
        {"Key": "kiln:role", "Value": "app"},
        {"Key": "kiln:fleet-health", "Value": health},
        {"Key": "kiln:fleet-boot-delay", "Value": str(boot_delay)},
        {"Key": "kiln:fleet-flap-period", "Value": str(flap_period)},
        {"Key": "Name", "Value": "%s-app" % app},
    ]


def register_app_ami(ec2, name, tags):
    """RegisterImage (no instance needed) and tag it; returns the image id."""
    img = ec2.register_image(
        Name=name, Architecture="x86_64", RootDeviceName="/dev/xvda", VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        TagSpecifications=[{"ResourceType": "image", "Tags": tags}])
    ami = img["ImageId"]
    # moto may ignore TagSpecifications on RegisterImage; tag explicitly either way.
    ec2.create_tags(Resources=[ami], Tags=tags)
    return ami


def build_world(endpoint, region="us-east-1", environments=("test", "live"), desired=2,
                health_port=8080, health="healthy", boot_delay=0.0, flap_period=1.0,
                app="demo", verify=True, verify_timeout=20.0, credentials=None, ami=None, subnets=None):
    """The world Terraform would make. `ami`: the groups start on that image (a real release, baked on
    instance bodies: standins/release.py) instead of a registered image the fleet stand-in answers for by its
    tags. `subnets`: CIDRs in 127.0.0.0/16 (default SUBNETS), one per availability zone a, b, ..."""
    common.check_loopback(endpoint)
    if isinstance(environments, str):
        environments = [e for e in environments.split(",") if e]
    ec2 = _client("ec2", endpoint, region, credentials)
    asg = _client("autoscaling", endpoint, region, credentials)
    elb = _client("elbv2", endpoint, region, credentials)

    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": "%s-vpc" % app}])
    subnet_ids = []
    # Each group may reach twice its desired size during a rotation, and every instance it ever launched keeps
    # its address: its old set and a new set at the largest. Given subnets (--subnets) are taken as they are.
    if subnets:
        zones = [(cidr, "abcdef"[n]) for n, cidr in enumerate(subnets)]
    else:
        zones = subnets_for(len(environments) * max(desired * 2, 1) * 2)
    for cidr, az in zones:
        sid = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr,
                                AvailabilityZone=region + az)["Subnet"]["SubnetId"]
        subnet_ids.append(sid)
    sg_id = ec2.create_security_group(GroupName="%s-app" % app, Description="kiln app",
                                      VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": health_port, "ToPort": health_port,
        "IpRanges": [{"CidrIp": VPC_CIDR}]}])

    if ami is None:
        ami = register_app_ami(ec2, "%s-app-%d" % (app, int(time.time() * 1000)),
                               app_ami_tags(app, health, boot_delay, flap_period))

    out = {
        "region": _out(region),
        "vpc_id": _out(vpc_id),
        "subnet_ids": _out(subnet_ids),
        "security_group_id": _out(sg_id),
        "app_ami_id": _out(ami),
        "health_port": _out(health_port),
        "environments": _out(list(environments)),
    }
    for env in environments:
        lt_name = "%s-%s" % (app, env)
        lt = ec2.create_launch_template(
            LaunchTemplateName=lt_name,
            LaunchTemplateData={
                "ImageId": ami,
                "InstanceType": "t3.micro",
                "SecurityGroupIds": [sg_id],
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                    {"Key": "kiln:environment", "Value": env},
                    {"Key": "kiln:app", "Value": app},
                    {"Key": "Name", "Value": lt_name}]}],
            })["LaunchTemplate"]
        lt_id = lt["LaunchTemplateId"]
        lt_version = str(lt["LatestVersionNumber"])
        tg_arn = elb.create_target_group(
            Name=lt_name, Protocol="HTTP", Port=health_port, VpcId=vpc_id, TargetType="instance",
            HealthCheckProtocol="HTTP", HealthCheckPort=str(health_port), HealthCheckPath="/health",
            HealthCheckIntervalSeconds=5, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        asg_name = lt_name
        asg.create_auto_scaling_group(
            AutoScalingGroupName=asg_name,
            LaunchTemplate={"LaunchTemplateId": lt_id, "Version": lt_version},
            MinSize=desired, MaxSize=max(desired * 2, 1), DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(subnet_ids),
            TargetGroupARNs=[tg_arn],
            HealthCheckType="ELB", HealthCheckGracePeriod=0,
            Tags=[{"Key": "kiln:environment", "Value": env, "PropagateAtLaunch": True,
                   "ResourceId": asg_name, "ResourceType": "auto-scaling-group"},
                  {"Key": "kiln:app", "Value": app, "PropagateAtLaunch": True,
                   "ResourceId": asg_name, "ResourceType": "auto-scaling-group"}])
        out["%s_asg_name" % env] = _out(asg_name)
        out["%s_launch_template_id" % env] = _out(lt_id)
        out["%s_launch_template_name" % env] = _out(lt_name)
        out["%s_launch_template_version" % env] = _out(lt_version)
        out["%s_target_group_arn" % env] = _out(tg_arn)

    if verify:
        verify_world(out, endpoint, region, desired, verify_timeout, credentials)
    return out


def verify_world(out, endpoint, region, desired, timeout=20.0, credentials=None):
    """Check each ASG has `desired` instances with 127.0.x.y private IPs; raise otherwise."""
    ec2 = _client("ec2", endpoint, region, credentials)
    asg = _client("autoscaling", endpoint, region, credentials)
    net = ipaddress.ip_network(VPC_CIDR)
    deadline = time.monotonic() + timeout
    envs = out["environments"]["value"]
    while True:
        problems = []
        names = [out["%s_asg_name" % e]["value"] for e in envs]
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
        for g in groups:
            ids = [i["InstanceId"] for i in g["Instances"]]
            if len(ids) != desired:
                problems.append("%s has %d instances, want %d" % (g["AutoScalingGroupName"], len(ids), desired))
                continue
            res = ec2.describe_instances(InstanceIds=ids)["Reservations"]
            for r in res:
                for i in r["Instances"]:
                    ip = i.get("PrivateIpAddress")
                    if not ip or ipaddress.ip_address(ip) not in net:
                        problems.append("%s private ip %r not in %s" % (i["InstanceId"], ip, VPC_CIDR))
                    if i.get("ImageId") != out["app_ami_id"]["value"]:
                        problems.append("%s image %s is not the app AMI" % (i["InstanceId"], i.get("ImageId")))
        if len(groups) != len(names):
            problems.append("missing ASGs")
        if not problems:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("world verification failed: " + "; ".join(problems))
        time.sleep(0.2)


def main(argv):
    p = argparse.ArgumentParser(prog="standin world", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--environments", default="test,live")
    p.add_argument("--desired", type=int, default=2)
    p.add_argument("--health-port", type=int, default=8080)
    p.add_argument("--health", choices=["healthy", "never", "flap"], default="healthy")
    p.add_argument("--boot-delay", type=float, default=0.0)
    p.add_argument("--flap-period", type=float, default=1.0)
    p.add_argument("--app", default="demo")
    p.add_argument("--ami", default=None, metavar="ID", help="start the groups on this image")
    p.add_argument("--subnets", default=None, metavar="CIDR,CIDR", help="the VPC's subnets (in 127.0.0.0/16)")
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    common.setup_logging("world", a.verbose)
    out = build_world(a.endpoint, region=a.region, environments=a.environments, desired=a.desired,
                      health_port=a.health_port, health=a.health, boot_delay=a.boot_delay,
                      flap_period=a.flap_period, app=a.app, verify=not a.no_verify, ami=a.ami,
                      subnets=[c for c in (a.subnets or "").split(",") if c] or None)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
