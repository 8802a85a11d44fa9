# Packer 1.7 and later: the amazon plugin, declared. kiln-bake passes this
# file (running `packer init` first) only when the installed Packer is 1.7
# or later; Packer 1.6.6 (Debian 12's) has the amazon builder built in and
# does not know this block.
packer {
  required_plugins {
    amazon = {
      version = ">= 1.2.0"
      source  = "github.com/hashicorp/amazon"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
  }
}
