# Plugins for current Packer releases (`packer init ami/`). Kept apart from
# cachenat.pkr.hcl because Packer 1.6.6, which CI validates that file with,
# rejects a `required_plugins` block; 1.6.6 has amazon-ebs built in.
packer {
  required_version = ">= 1.7.0"

  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
