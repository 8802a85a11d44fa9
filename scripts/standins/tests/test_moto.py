import json

import pytest
from botocore.exceptions import ClientError

from standins.harness import running
from .conftest import client


def test_moto_starts_and_answers(moto):
    assert moto["name"] == "moto" and moto["url"].startswith("http://127.0.0.1:")
    ec2 = client("ec2", moto["url"])
    assert ec2.describe_regions()["Regions"]
    sts = client("sts", moto["url"])
    assert sts.get_caller_identity()["Account"]


def test_signature_verification_after_n_actions():
    # 3 unauthenticated actions: CreateUser, PutUserPolicy, CreateAccessKey.
    with running("moto", "--verify-signatures", "3") as m:
        assert m["verify_signatures_after"] == 3
        iam = client("iam", m["url"])
        iam.create_user(UserName="kiln")
        iam.put_user_policy(UserName="kiln", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="kiln")["AccessKey"]
        good = client("ec2", m["url"], aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
        good.describe_vpcs()
        bad = client("ec2", m["url"], aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key="wrong" + key["SecretAccessKey"][5:])
        with pytest.raises(ClientError) as e:
            bad.describe_vpcs()
        assert e.value.response["Error"]["Code"] in ("AuthFailure", "SignatureDoesNotMatch")
        unknown = client("ec2", m["url"])  # key "testing" does not exist in moto's IAM
        with pytest.raises(ClientError) as e:
            unknown.describe_vpcs()
        assert e.value.response["Error"]["Code"] in ("AuthFailure", "InvalidClientTokenId")
        # Query-protocol services answer SignatureDoesNotMatch
        bad_asg = client("autoscaling", m["url"], aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key="x" * 40)
        with pytest.raises(ClientError) as e:
            bad_asg.describe_auto_scaling_groups()
        print("autoscaling bad signature:", e.value.response["Error"])
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)


def test_copy_image_encrypts_the_copy_with_the_regions_key(moto):
    """The stand-in gives moto's CopyImage AWS's Encrypted and KmsKeyId
    (moto 5.2.5 ignores both): the copy's snapshot is encrypted with the
    destination region's key, named by its alias."""
    home = client("ec2", moto["url"], region_name="us-east-1")
    west = client("ec2", moto["url"], region_name="us-west-2")
    kms = client("kms", moto["url"], region_name="us-west-2")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/kiln-test", TargetKeyId=key["KeyId"])
    source = home.register_image(Name="src", RootDeviceName="/dev/sda1")["ImageId"]
    plain = west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="plain")["ImageId"]
    copied = west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="enc",
                             Encrypted=True, KmsKeyId="alias/kiln-test")["ImageId"]

    def snapshot(image):
        found = west.describe_images(ImageIds=[image])["Images"][0]
        snap = found["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        return west.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]

    assert snapshot(copied)["Encrypted"] is True
    assert snapshot(copied)["KmsKeyId"] == key["Arn"]
    assert snapshot(plain)["Encrypted"] is False
    with pytest.raises(ClientError) as e:
        west.copy_image(SourceImageId=source, SourceRegion="us-east-1", Name="bad", KmsKeyId="alias/kiln-test")
    assert e.value.response["Error"]["Code"] == "InvalidParameterDependency"


def test_enable_image_deprecation_sets_the_deprecation_time(moto):
    """moto 5.2.5 has no EnableImageDeprecation; the stand-in adds it, seconds
    rounded to the minute as EC2 documents."""
    ec2 = client("ec2", moto["url"])
    image = ec2.register_image(Name="deprecated", RootDeviceName="/dev/sda1")["ImageId"]
    ec2.enable_image_deprecation(ImageId=image, DeprecateAt="2031-03-04T05:06:40Z")
    found = ec2.describe_images(ImageIds=[image])["Images"][0]
    assert found["DeprecationTime"] == "2031-03-04T05:07:00.000Z"


def test_an_update_changes_only_the_mixed_instances_policy_parts_it_names(moto):
    """AWS: "Any properties that you don't specify are not changed by this
    update request" (EC2 Auto Scaling API Reference, UpdateAutoScalingGroup);
    moto 5.2.5 alone replaces (or, with sizes only, drops) the policy."""
    ec2 = client("ec2", moto["url"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="mixed", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template, SourceVersion="1",
                                       LaunchTemplateData={"ImageId": ami})
    autoscaling = client("autoscaling", moto["url"])
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="mixed", MinSize=1, MaxSize=2, DesiredCapacity=1, VPCZoneIdentifier=subnet,
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "1"},
                "Overrides": [{"InstanceType": "t3.micro"}, {"InstanceType": "t3a.micro"}],
            },
            "InstancesDistribution": {"OnDemandBaseCapacity": 1},
        })

    def policy():
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["mixed"])["AutoScalingGroups"][0]
        assert "LaunchTemplate" not in group
        return group["MixedInstancesPolicy"]

    autoscaling.update_auto_scaling_group(AutoScalingGroupName="mixed", MaxSize=3)
    assert policy()["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] == "1"
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="mixed", MixedInstancesPolicy={
        "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "2"}}})
    after = policy()
    assert after["LaunchTemplate"]["LaunchTemplateSpecification"]["Version"] == "2"
    assert [o["InstanceType"] for o in after["LaunchTemplate"]["Overrides"]] == ["t3.micro", "t3a.micro"]
    assert after["InstancesDistribution"]["OnDemandBaseCapacity"] == 1


def test_an_override_keeps_its_own_launch_template(moto):
    """An override in a mixed instances policy may carry its own
    LaunchTemplateSpecification ("Provides a launch template for the
    specified instance type or instance requirements ... overrides the
    launch template that is defined for the mixed instances policy", EC2
    Auto Scaling API Reference, LaunchTemplateOverrides); DescribeAutoScalingGroups
    returns it as given, which is what kiln-rotate refuses a group by."""
    ec2 = client("ec2", moto["url"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    main, arm = (ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"] for name in ("main", "arm"))
    autoscaling = client("autoscaling", moto["url"])
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="own-template", MinSize=1, MaxSize=2, DesiredCapacity=1, VPCZoneIdentifier=subnet,
        MixedInstancesPolicy={"LaunchTemplate": {
            "LaunchTemplateSpecification": {"LaunchTemplateId": main, "Version": "1"},
            "Overrides": [
                {"InstanceType": "t3.micro"},
                {"InstanceType": "t4g.micro",
                 "LaunchTemplateSpecification": {"LaunchTemplateId": arm, "Version": "$Latest"}},
            ],
        }})
    group = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["own-template"])["AutoScalingGroups"][0]
    overrides = group["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert overrides[0] == {"InstanceType": "t3.micro"}
    assert overrides[1]["InstanceType"] == "t4g.micro"
    assert overrides[1]["LaunchTemplateSpecification"]["LaunchTemplateId"] == arm
    assert overrides[1]["LaunchTemplateSpecification"]["Version"] == "$Latest"
