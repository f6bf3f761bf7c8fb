# Builds the cachenat AMI: Amazon Linux 2023 minimal with cachenat installed
# from the release tarball of its architecture (which carries its own Node
# runtime) by the same ami/install.sh the boot test runs.
#
#   npm run package          # release/cachenat-<version>-linux-{x64,arm64}.tar.gz
#   packer init ami/
#   packer build -var arch=x86_64 ami/
#   packer build -var arch=arm64 ami/
#
# This file is kept valid for Packer 1.6.6 (Debian's packer, used by CI for
# `packer validate ami/cachenat.pkr.hcl`), so it only uses arguments that the
# amazon-ebs builder of that release knows. In particular 1.6.6 has no
# `metadata_options` or `imds_support`, and rejects them even inside `dynamic`
# blocks; IMDSv2 is enforced as described at the source and post-processor
# below instead. `required_plugins` lives in plugins.pkr.hcl for the same reason.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region to build in; the AMI is registered there."
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "CPU architecture of the AMI: x86_64 or arm64."

  validation {
    condition     = contains(["x86_64", "arm64"], var.arch)
    error_message = "The arch variable must be \"x86_64\" or \"arm64\"."
  }
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Build instance type; empty picks t3.small for x86_64 and t4g.small for arm64."
}

variable "cachenat_version" {
  type        = string
  default     = ""
  description = "Release to bake, as in release/cachenat-<version>-linux-<x64|arm64>.tar.gz; empty means the version in package.json."
}

variable "ami_name_prefix" {
  type        = string
  default     = "cachenat"
  description = "AMI names are <prefix>-<version>-al2023-<arch>-<UTC timestamp>."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty means a default subnet of the default VPC. It needs a route for SSH from this machine and outbound access to the dnf repositories."
}

variable "vpc_id" {
  type        = string
  default     = ""
  description = "VPC for the build instance's temporary security group; empty means the default VPC."
}

variable "build_ssh_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "Who may reach the build instance on port 22 while it exists; narrow it to this machine's address if you can."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for the AMI, its snapshots and the build instance."
}

locals {
  default_instance_types = {
    x86_64 = "t3.small"
    arm64  = "t4g.small"
  }
  instance_type = var.instance_type != "" ? var.instance_type : local.default_instance_types[var.arch]

  # abspath: Packer 1.6.6 resolves file() against the template's directory,
  # newer releases against the working directory; absolute paths mean the same
  # file to both.
  repo_dir = "${abspath(path.root)}/.."
  version  = var.cachenat_version != "" ? var.cachenat_version : jsondecode(file("${local.repo_dir}/package.json")).version
  # Node's name for each architecture, as in the release tarballs' names.
  node_arch = {
    x86_64 = "x64"
    arm64  = "arm64"
  }
  release = "${local.repo_dir}/release/cachenat-${local.version}-linux-${local.node_arch[var.arch]}.tar.gz"

  ami_name = "${var.ami_name_prefix}-${local.version}-al2023-${var.arch}-${formatdate("YYYYMMDD-hhmmss", timestamp())}"

  tags = merge(
    {
      Name               = local.ami_name
      "cachenat:version" = local.version
      "cachenat:arch"    = var.arch
      SourceAMI          = "{{ .SourceAMI }}"
      SourceAMIName      = "{{ .SourceAMIName }}"
    },
    var.tags,
  )
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id
  vpc_id        = var.vpc_id

  # Amazon's own AL2023 minimal image, newest first: never a hard-coded id.
  # Amazon registers these with ImdsSupport v2.0, so the build instance
  # launched from it already requires IMDSv2 tokens; the first provisioner
  # checks that it really does.
  source_ami_filter {
    owners      = ["amazon"]
    most_recent = true
    filters = {
      name                  = "al2023-ami-minimal-*-${var.arch}"
      architecture          = var.arch
      "virtualization-type" = "hvm"
      "root-device-type"    = "ebs"
    }
  }

  communicator                          = "ssh"
  ssh_username                          = "ec2-user"
  associate_public_ip_address           = true
  temporary_security_group_source_cidrs = var.build_ssh_cidrs

  # The root volume is encrypted from the start (with the account's default
  # EBS key), so the snapshot behind the AMI is encrypted too. gp3 at its
  # baseline; 1.6.6 insists on explicit iops and throughput for gp3.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 8
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }

  ami_name        = local.ami_name
  ami_description = "cachenat ${local.version}: ElastiCache NAT forwarder on Amazon Linux 2023 minimal (${var.arch})"
  ena_support     = true

  tags            = local.tags
  snapshot_tags   = local.tags
  run_tags        = merge(local.tags, { Name = "packer-build-${local.ami_name}" })
  run_volume_tags = local.tags
}

build {
  sources = ["source.amazon-ebs.al2023"]

  # Refuse to bake on an instance that answers metadata requests without a
  # token (IMDSv1): the AMI is meant to run with IMDSv2 only.
  provisioner "shell" {
    inline = [
      "set -eu",
      "code=$(curl -s -o /dev/null -w '%%{http_code}' --max-time 5 http://169.254.169.254/latest/meta-data/ || true)",
      "if [ \"$code\" != 401 ]; then echo \"instance metadata answered a request without a token (HTTP $code): IMDSv1 is on. Require IMDSv2 for new instances (aws ec2 modify-instance-metadata-defaults --region ${var.region} --http-tokens required) and build again.\" >&2; exit 1; fi",
    ]
  }

  # `generated`: the release is built by `npm run package` just before the
  # build, so it need not exist when the template is validated.
  provisioner "file" {
    source      = local.release
    destination = "/tmp/cachenat-release.tar.gz"
    generated   = true
  }

  # Install with the ami/install.sh shipped inside that same release, so the
  # script always matches the code it installs. It installs iptables-nft,
  # iptables-services and conntrack-tools with dnf; Node comes inside the
  # release, so the image gets no distro Node.
  provisioner "shell" {
    inline = [
      "set -eu",
      "mkdir /tmp/cachenat-release",
      "tar -xzf /tmp/cachenat-release.tar.gz -C /tmp/cachenat-release",
      "sudo sh /tmp/cachenat-release/cachenat/ami/install.sh /tmp/cachenat-release.tar.gz",
      "env -i PATH=/nonexistent /usr/local/bin/cachenat --help >/dev/null",
      # cfn-signal for deploy/'s boot check (cfn-ready), so a boot needs no dnf.
      "sudo dnf install -y -q aws-cfn-bootstrap",
      "rm -rf /tmp/cachenat-release /tmp/cachenat-release.tar.gz",
    ]
  }

  # Leave nothing instance-specific behind, so every instance boots as new:
  # cloud-init runs again, systemd makes a fresh machine-id, sshd gets new
  # host keys.
  provisioner "shell" {
    inline = [
      "set -eu",
      "sudo dnf clean all",
      "sudo rm -rf /var/cache/dnf",
      "sudo cloud-init clean --logs",
      "sudo truncate -s 0 /etc/machine-id",
      "sudo rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed",
      "sudo rm -f /etc/ssh/ssh_host_*",
      "sudo rm -f /root/.bash_history /home/ec2-user/.bash_history",
    ]
  }

  # Mark the AMI itself IMDSv2-only (ImdsSupport v2.0), so instances launched
  # from it require tokens unless the launch says otherwise. Newer Packer can
  # say `imds_support = "v2.0"` in the source; 1.6.6 cannot, so this asks EC2
  # directly and needs the AWS CLI and ec2:DescribeImages and
  # ec2:ModifyImageAttribute where packer runs. The setting cannot be undone.
  post-processor "shell-local" {
    inline = [
      "set -eu",
      "ami=$(aws ec2 describe-images --region ${var.region} --owners self --filters 'Name=name,Values=${local.ami_name}' --query 'Images[0].ImageId' --output text)",
      "aws ec2 modify-image-attribute --region ${var.region} --image-id \"$ami\" --imds-support v2.0",
      "echo \"$ami: ImdsSupport v2.0\"",
    ]
  }
}
