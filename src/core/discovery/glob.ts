// Globs for discovery.include / discovery.exclude: `*` matches any run of
// characters, `?` exactly one, everything else itself. Matching ignores case
// because ElastiCache stores cluster and replication group ids in lower case
// whatever case they were created with.

export type GlobMatcher = (text: string) => boolean;

export function compileGlob(glob: string): GlobMatcher {
  const body = [...glob]
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
    .join('');
  const pattern = new RegExp(`^${body}$`, 'is');
  return (text) => pattern.test(text);
}

export interface TargetFilter {
  include: string[];
  exclude: string[];
}

/** A thing with these ids is selected when one id matches an include glob and none matches an exclude glob. */
export function compileFilter(filter: TargetFilter): (ids: string[]) => boolean {
  const include = filter.include.map(compileGlob);
  const exclude = filter.exclude.map(compileGlob);
  return (ids) =>
    ids.some((id) => include.some((match) => match(id))) && !ids.some((id) => exclude.some((match) => match(id)));
}
