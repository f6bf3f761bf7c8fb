// The user data of a cachenat NAT instance: cloud-config that writes
// /etc/cachenat/config.yaml and the boot check (cfn-ready), then runs the
// check, which starts cachenat and tells CloudFormation whether it came up.
//
// The constructs render it (cachenat-instance.ts) with CDK tokens for what
// CloudFormation knows only at deploy time (the table name, the Elastic IP,
// the stack name); the lab boots its instances with the same text, rendered
// with the lab's values (lab/user-data.ts). So this file imports nothing: the
// root project compiles it for the lab, deploy/ for the constructs.
//
// cloud-config, not a shell script: cloud-init writes the files in its
// network stage, before network-online.target and so before cachenat.service
// (which the AMI enables) starts at boot; a script would only run once the
// daemon was already up with the AMI's example config.

export const CONFIG_PATH = '/etc/cachenat/config.yaml';
export const BOOT_CHECK_PATH = '/usr/local/lib/cachenat/cfn-ready';

/** The settings of /etc/cachenat/config.yaml the constructs decide; every other key keeps the daemon's default. */
export interface RenderedConfig {
  /** aws.region. */
  region: string;
  /** forward.inboundInterface; undefined: the daemon's default. */
  inboundInterface: string | undefined;
  /** forward.allowedSources (CIDRs). */
  allowedSources: readonly string[];
  /** forward.publicAddress: the Elastic IP clients dial. */
  publicAddress: string;
  /** ports.redis and ports.memcached: each engine's first external port. */
  redisPort: number;
  memcachedPort: number;
  ha: {
    table: string;
    group: string;
    /** As the config takes it, e.g. 10s. */
    lease: string;
    /** Port mode: the Elastic IP's allocation id. */
    elasticIp: string;
  };
}

/** Where cfn-ready sends its one signal: the Auto Scaling group that waits for it. */
export interface BootSignal {
  stack: string;
  /** The group's logical id. */
  resource: string;
  region: string;
  /** How long cfn-ready waits for `cachenat health` to be good after the start (seconds). */
  healthWaitSeconds: number;
}

// A JSON string is a YAML scalar that cannot break out of its line, whatever
// the value (a token resolves to an id, a name or a region: no newlines).
const scalar = (value: string | number): string => (typeof value === 'number' ? String(value) : JSON.stringify(value));

/** The config file, as YAML. */
export function renderConfig(c: RenderedConfig): string {
  return [
    '# Written at first boot by the user data of the cachenat CDK constructs (deploy/).',
    '# Every key: config.example.yaml. Edit the construct props, not this file: a',
    '# replacement instance gets the file from the user data again.',
    'aws:',
    `  region: ${scalar(c.region)}`,
    'forward:',
    ...(c.inboundInterface === undefined ? [] : [`  inboundInterface: ${scalar(c.inboundInterface)}`]),
    '  allowedSources:',
    ...c.allowedSources.map((cidr) => `    - ${scalar(cidr)}`),
    '  snat: masquerade',
    `  publicAddress: ${scalar(c.publicAddress)}`,
    'ports:',
    `  redis: ${scalar(c.redisPort)}`,
    `  memcached: ${scalar(c.memcachedPort)}`,
    'ha:',
    `  table: ${scalar(c.ha.table)}`,
    `  group: ${scalar(c.ha.group)}`,
    `  lease: ${scalar(c.ha.lease)}`,
    `  elasticIp: ${scalar(c.ha.elasticIp)}`,
    '',
  ].join('\n');
}

/**
 * The boot check. Static: everything it needs comes as arguments from
 * runcmd, so the same file is tested as it is shipped (test/deploy/cfn-ready.test.ts).
 */
export const BOOT_CHECK_SCRIPT = `#!/bin/bash
# cfn-ready: tells CloudFormation whether cachenat came up on this instance.
# The Auto Scaling group's CreationPolicy (and its rolling update) waits for
# one signal from each new instance. Written and run once, at first boot, by
# the user data of the cachenat CDK constructs (deploy/).
#
#   cfn-ready --stack NAME --resource LOGICAL_ID --region REGION [--wait SECONDS]
#
# Success: \`systemctl start cachenat\` returned (Type=notify: once the daemon
# sent READY=1, after its first complete pass) and \`cachenat health\` says OK,
# or WARNING with its ha check OK (a warning about a cache or the config, not
# about the pair). Anything else after --wait seconds (default 300): failure,
# with what went wrong as the reason CloudFormation shows. The signal of an
# instance the group started later, to replace a lost one, finds no stack
# waiting for it: CloudFormation refuses it, which is logged and harmless.
set -u
PATH=$PATH:/opt/aws/bin:/usr/local/bin

stack='' resource='' region='' wait=300
while [ $# -gt 0 ]; do
  case $1 in
    --stack | --resource | --region | --wait)
      [ $# -ge 2 ] || { echo "cfn-ready: $1 needs a value" >&2; exit 64; }
      case $1 in
        --stack) stack=$2 ;;
        --resource) resource=$2 ;;
        --region) region=$2 ;;
        --wait) wait=$2 ;;
      esac
      shift 2
      ;;
    *) echo "cfn-ready: unknown argument $1" >&2; exit 64 ;;
  esac
done
if [ -z "$stack" ] || [ -z "$resource" ] || [ -z "$region" ]; then
  echo 'usage: cfn-ready --stack NAME --resource LOGICAL_ID --region REGION [--wait SECONDS]' >&2
  exit 64
fi
case $wait in '' | *[!0-9]*) echo "cfn-ready: --wait takes whole seconds, got $wait" >&2; exit 64 ;; esac

say() { echo "cachenat cfn-ready: $*"; }

# signal EXIT_CODE REASON
signal() {
  if ! command -v cfn-signal >/dev/null 2>&1; then
    # The helper scripts are a package of Amazon Linux 2023, not on its minimal image.
    say 'cfn-signal not found: installing aws-cfn-bootstrap'
    dnf install -y -q aws-cfn-bootstrap >/dev/null 2>&1 || say 'could not install aws-cfn-bootstrap'
  fi
  # CloudFormation shows the reason in the stack's events: one line, not too long.
  reason=$(printf '%s' "$2" | tr '\\n' ' ' | cut -c 1-900)
  if cfn-signal --exit-code "$1" --reason "$reason" --stack "$stack" --resource "$resource" --region "$region"; then
    say "signalled $resource of $stack: exit code $1: $reason"
  else
    say "CloudFormation took no signal (no update of $resource is waiting: fine for a replacement): exit code $1: $reason"
  fi
}

systemctl enable --quiet cachenat || say 'could not enable cachenat.service'
if ! systemctl start cachenat; then
  journal=$(journalctl -u cachenat -n 3 --no-pager -o cat 2>/dev/null)
  signal 1 "systemctl start cachenat failed (see journalctl -u cachenat): $journal"
  exit 1
fi
say 'cachenat.service started (READY=1)'

deadline=$((SECONDS + wait))
while :; do
  report=$(cachenat health 2>&1)
  code=$?
  pair=$(printf '%s\\n' "$report" | grep -E '^\\[(WARNING|CRITICAL|UNKNOWN)\\] ha: ' || true)
  if [ "$code" -eq 0 ] || { [ "$code" -eq 1 ] && [ -z "$pair" ]; }; then
    signal 0 "$(printf '%s\\n' "$report" | head -n 1)"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    problems=$(printf '%s\\n' "$report" | grep -E '^\\[(WARNING|CRITICAL|UNKNOWN)\\] ' || printf '%s\\n' "$report" | head -n 3)
    signal 1 "cachenat health after \${wait}s: $problems"
    exit 1
  fi
  sleep 3
done
`;

/** Indents every line of a block scalar's content (empty lines stay empty). */
const indent = (text: string, by: string): string =>
  text
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => (line === '' ? '' : by + line))
    .join('\n');

/** The whole user data: #cloud-config with the two files and the command that runs the check. */
export function renderUserData(config: RenderedConfig, signal: BootSignal): string {
  const check = [BOOT_CHECK_PATH, '--stack', signal.stack, '--resource', signal.resource, '--region', signal.region, '--wait', String(signal.healthWaitSeconds)];
  return [
    '#cloud-config',
    '# cachenat NAT instance, rendered by the cachenat CDK constructs (deploy/).',
    'write_files:',
    `  - path: ${CONFIG_PATH}`,
    '    owner: root:root',
    '    permissions: "0644"',
    '    content: |',
    indent(renderConfig(config), '      '),
    `  - path: ${BOOT_CHECK_PATH}`,
    '    owner: root:root',
    '    permissions: "0755"',
    '    content: |',
    indent(BOOT_CHECK_SCRIPT, '      '),
    'runcmd:',
    `  - [${check.map(scalar).join(', ')}]`,
    '',
  ].join('\n');
}
