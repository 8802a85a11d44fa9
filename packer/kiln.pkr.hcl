# Kiln's default Packer template (HCL2; Packer 1.6.6 and later).
#
# kiln-bake fills every variable below from its own settings through a var
# file; a project copies this file to packer/kiln.pkr.hcl (with ansible/
# beside it) and changes what it needs. Kiln tags the image and its
# snapshots itself after the build; `tags` is passed so that a changed
# template keeps them too.
#
# Packer 1.7+ wants its plugins declared: see plugins.pkr.hcl beside this
# file, which kiln-bake adds only when the installed Packer supports it.

variable "source_ami" {
  type        = string
  description = "The AMI the builder instance starts from (resolved by kiln-bake)."
}
variable "ami_name" {
  type = string
}
variable "region" {
  type = string
}
variable "instance_type" {
  type    = string
  default = "t3.micro"
}
variable "subnet_id" {
  type    = string
  default = ""
}
variable "tags" {
  type    = map(string)
  default = {}
}
variable "role" {
  type        = string
  description = "app or base: which playbook runs."
}
variable "application" {
  type = string
}
variable "application_version" {
  type    = string
  default = ""
}
variable "artifact" {
  type        = string
  default     = ""
  description = "The application's artifact from build.json (app role)."
}
variable "artifact_sha256" {
  type    = string
  default = ""
}
variable "playbooks_dir" {
  type = string
}
variable "ec2_endpoint" {
  type        = string
  default     = ""
  description = "Only set against a stand-in (AWS_ENDPOINT_URL); empty means AWS."
}
variable "communicator" {
  type        = string
  default     = "ssh"
  description = "ssh, or none when nothing may connect to the builder (stand-in tests)."
}
variable "encrypt_boot" {
  type        = bool
  default     = false
  description = "Encrypt the AMI's volumes (bake.encrypt_boot, or a kms_key for the bake region in bake.regions)."
}
variable "kms_key_id" {
  type        = string
  default     = ""
  description = "The bake region's KMS key from bake.regions; empty: the account's default EBS key."
}
variable "ssh_username" {
  type    = string
  default = "ubuntu"
}
# Set by kiln-bake only when EC2 is a stand-in on loopback (the instance
# bodies of `scripts/standin moto --bodies`): there the builder's only
# address is its private 127.x one. null leaves Packer's own behaviour
# (public address if the instance has one, else private; the subnet's
# public-address setting).
variable "ssh_interface" {
  type    = string
  default = null
}
variable "associate_public_ip_address" {
  type    = bool
  default = null
}

source "amazon-ebs" "kiln" {
  region        = var.region
  source_ami    = var.source_ami
  ami_name      = var.ami_name
  instance_type = var.instance_type
  subnet_id     = var.subnet_id

  custom_endpoint_ec2     = var.ec2_endpoint
  skip_region_validation  = var.ec2_endpoint != ""
  skip_metadata_api_check = var.ec2_endpoint != ""

  communicator                = var.communicator
  ssh_username                = var.ssh_username
  ssh_timeout                 = "10m"
  ssh_interface               = var.ssh_interface
  associate_public_ip_address = var.associate_public_ip_address

  # Packer's waiting (instance running, AMI available, ...), here rather
  # than in AWS_MAX_ATTEMPTS, which is Kiln's retry setting and never
  # reaches Packer (packer issue 8415): every 15 s, for up to 30 min.
  aws_polling {
    delay_seconds = 15
    max_attempts  = 120
  }

  encrypt_boot = var.encrypt_boot
  kms_key_id   = var.kms_key_id

  tags          = var.tags
  snapshot_tags = var.tags
  run_tags = {
    "Name"     = "kiln-bake ${var.ami_name}"
    "kiln:app" = var.application
  }
}

build {
  sources = ["source.amazon-ebs.kiln"]

  # kiln:provisioners-begin
  # The build artifact (build.json's, checked against its SHA-256 by
  # kiln-bake), uploaded for the app role only: app.yml installs it from
  # there. `except` rather than a second template: Packer 1.6.6 has no
  # `dynamic` block for provisioners, and refuses a file provisioner with no
  # source ("Source must be specified."), but it skips, without preparing
  # it, a provisioner whose `except` names the build, and `except` may be an
  # expression of the variables.
  provisioner "file" {
    except      = var.role == "app" ? [] : ["amazon-ebs.kiln"]
    source      = var.artifact
    destination = "/tmp/${basename(var.artifact)}"
  }

  # Ansible straight to the builder's sshd (base.yml or app.yml), as the
  # SSH communicator reaches it, with the communicator's key. Not through
  # Packer's local SSH proxy (use_proxy = true, the default): it offers
  # only an ssh-rsa host key, which OpenSSH 8.8 and later refuse ("no
  # matching host key type found. Their offer: ssh-rsa": packer-plugin-
  # ansible issues 69 and 140, fixed in the plugin by PR 162, not in
  # Debian's Packer 1.6.6), and it fails OpenSSH 9's scp, which speaks SFTP
  # (issues 100 and 110). Straight to sshd none of that applies, and no
  # host-key or scp option is needed; the plugin (Packer 1.7+) has the same
  # setting. Pipelining: one SSH round trip per task instead of several.
  provisioner "ansible" {
    playbook_file = "${var.playbooks_dir}/${var.role}.yml"
    user          = var.ssh_username
    use_proxy     = false
    extra_arguments = [
      "--extra-vars", "kiln_application=${var.application}",
      "--extra-vars", "kiln_version=${var.application_version}",
      "--extra-vars", "kiln_artifact=${var.artifact}",
      "--extra-vars", "kiln_artifact_upload=/tmp/${basename(var.artifact)}",
      "--extra-vars", "kiln_artifact_sha256=${var.artifact_sha256}",
    ]
    ansible_env_vars = ["ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=True", "ANSIBLE_PIPELINING=True"]
  }
  # kiln:provisioners-end
}
