export const EXIT = {
  ok: 0,
  failure: 1,
  /** `plan`: changes pending. Also bad usage, as most CLIs do. */
  pending: 2,
  usage: 64,
  /** sysexits EX_CONFIG: bad configuration; systemd's RestartPreventExitStatus names it. */
  config: 78,
} as const;

export class UsageError extends Error {
  override name = 'UsageError';
}
