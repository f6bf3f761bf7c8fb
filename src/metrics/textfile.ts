// Replaces the metrics textfile so node_exporter never reads half of it: the
// text goes to a temp file in the same directory (named so the collector,
// which reads only *.prom, skips it), then a rename swaps it in. No fsync: a
// file lost in a crash is rewritten by the next pass, and syncing the disk
// every few seconds would cost more than the rest of the metrics step.
// World-readable whatever the unit's umask (0027): node_exporter runs as its own user.

import { writeFileAtomic } from '../util/atomic-file.js';

export const replaceTextfile = (path: string, text: string): Promise<void> => writeFileAtomic(path, text, 0o644, { durable: false });
