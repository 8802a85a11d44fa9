"""Baking with Packer against the moto stand-in, shared by the demo and the
end-to-end test: what has to differ from a real bake, and why.

- communicator "none": moto makes up public addresses, and an SSH attempt
  would leave the machine, so the shipped template runs without its Ansible
  provisioner (the block between `# kiln:provisioners-begin` and `-end`).
- the source image: everything made in moto reports a `standard` root
  device, which Packer refuses; moto's stock Ubuntu images report `ebs`.
"""
import pathlib
import shutil

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]


def template_without_provisioners(destination):
    """Writes packer/kiln.pkr.hcl without its provisioners, and the
    playbooks beside it, into `destination`; returns the template's path."""
    destination = pathlib.Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "packer" / "kiln.pkr.hcl").read_text()
    begin, end = text.index("# kiln:provisioners-begin"), text.index("# kiln:provisioners-end")
    template = destination / "kiln.pkr.hcl"
    template.write_text(text[:begin] + text[end + len("# kiln:provisioners-end"):])
    shutil.copytree(ROOT / "packer" / "ansible", destination / "ansible", dirs_exist_ok=True)
    return template


def stock_ubuntu_ami(endpoint, region="us-east-1"):
    """One of moto's stock Ubuntu images (Canonical's owner id, an EBS root)."""
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    images = ec2.describe_images(Owners=["099720109477"],
                                 Filters=[{"Name": "root-device-type", "Values": ["ebs"]}])["Images"]
    return sorted(image["ImageId"] for image in images)[0]
