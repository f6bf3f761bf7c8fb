import t from 'tap';
import { ConntrackTool } from '../../src/netfilter/conntrack.js';
import { KernelError, runCommand, type CommandRunner } from '../../src/netfilter/iptables.js';

const answering = (exitCode: number, stderr: string, calls: string[][] = []): CommandRunner =>
  async (file, args) => {
    calls.push([file, ...args]);
    return { stdout: '', stderr, exitCode };
  };

t.test('deletes the flows of a listen port to the old target and counts them', async (t) => {
  const calls: string[][] = [];
  const tool = new ConntrackTool(answering(0, 'conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n', calls));
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 3);
  t.same(calls, [['conntrack', '-D', '-p', 'tcp', '--orig-port-dst', '6380', '--reply-src', '10.0.1.231', '--mark', '0x1000000/0x1000000']]);
});

t.test('address mode: only the flows that came in on the listen address', async (t) => {
  const calls: string[][] = [];
  const tool = new ConntrackTool(answering(0, 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n', calls));
  t.equal(await tool.forgetFlows({ kind: 'listener', listenAddress: '10.0.9.21', listenPort: 6379, targetIp: '10.0.1.231', cause: 'moved' }), 1);
  t.same(calls, [['conntrack', '-D', '-p', 'tcp', '--orig-dst', '10.0.9.21', '--orig-port-dst', '6379', '--reply-src', '10.0.1.231', '--mark', '0x1000000/0x1000000']]);
  await t.rejects(tool.forgetFlows({ kind: 'listener', listenAddress: '127.0.0.1', listenPort: 6379, targetIp: '10.0.1.231', cause: 'moved' }), /refusing to run conntrack/);
});

t.test('a source range: only the flows cachenat marked, from that range', async (t) => {
  const calls: string[][] = [];
  const tool = new ConntrackTool(answering(0, 'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n', calls), 0x80);
  t.equal(await tool.forgetFlows({ kind: 'source', source: '198.51.100.0/24', cause: 'source' }), 2);
  t.same(calls, [['conntrack', '-D', '-p', 'tcp', '--orig-src', '198.51.100.0/24', '--mark', '0x80/0x80']]);
  await t.rejects(tool.forgetFlows({ kind: 'source', source: '198.51.100.1/24', cause: 'source' }), /host bits/);
  await t.rejects(tool.forgetFlows({ kind: 'source', source: '198.51.100.0/24 -F', cause: 'source' }), /refusing to run conntrack/);
  t.equal(calls.length, 1);
});

t.test('"0 flow entries" with exit 1 is success', async (t) => {
  const tool = new ConntrackTool(answering(1, 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'));
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 0);
});

t.test('a real failure throws a KernelError', async (t) => {
  const tool = new ConntrackTool(answering(1, 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n'));
  await t.rejects(tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), KernelError);
  t.equal(tool.available, true);
});

t.test('a missing binary is 0 flows and marks the tool unavailable', async (t) => {
  const calls: string[][] = [];
  const missing: CommandRunner = (file, args, options) => {
    calls.push([file]);
    return runCommand(`cachenat-no-such-${file}`, args, options);
  };
  const tool = new ConntrackTool(missing);
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231', cause: 'moved' }), 0);
  t.equal(tool.available, false);
  t.equal(await tool.forgetFlows({ kind: 'listener', listenPort: 6381, targetIp: '10.0.1.231', cause: 'moved' }), 0);
  t.equal(calls.length, 1, 'not tried again');
});

t.test('refuses invalid arguments before running anything', async (t) => {
  const calls: string[][] = [];
  const tool = new ConntrackTool(answering(0, '', calls));
  await t.rejects(tool.forgetFlows({ kind: 'listener', listenPort: 0, targetIp: '10.0.1.231', cause: 'moved' }), /port 0/);
  await t.rejects(tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '10.0.1.231 --orig-src 1.2.3.4', cause: 'moved' }), /not an IPv4 address/);
  await t.rejects(tool.forgetFlows({ kind: 'listener', listenPort: 6380, targetIp: '127.0.0.1', cause: 'moved' }), /never forwarded to/);
  t.equal(calls.length, 0);
});
