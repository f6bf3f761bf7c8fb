// What the lab's fake AWS services share: reading a bounded request body,
// plain and JSON answers, XML escaping, listening, and telling whether a
// module was started as the program.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { realpath } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Collects a request body of at most maxBytes (a bigger one destroys the request) and hands it over as text. */
export function onBody(req: IncomingMessage, maxBytes: number, handle: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) req.destroy();
    else chunks.push(chunk);
  });
  req.on('end', () => handle(Buffer.concat(chunks).toString('utf8')));
}

export function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export const sendJson = (res: ServerResponse, status: number, value: unknown): void =>
  send(res, status, 'application/json', `${JSON.stringify(value)}\n`);

export const esc = (value: string): string =>
  value.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch] as string);

export const el = (name: string, inner: string): string => `<${name}>${inner}</${name}>`;

/** An element holding escaped text. */
export const text = (name: string, value: string): string => el(name, esc(value));

/** Listens on host:port (0: a free port) and resolves with the port. */
export async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Closes the server and every connection, including requests left hanging on purpose. */
export const closeServer = (server: Server): Promise<void> =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

/** Whether the module at moduleUrl is the program node was started with. */
export async function isMainModule(moduleUrl: string): Promise<boolean> {
  const script = process.argv[1];
  if (script === undefined) return false;
  return moduleUrl === pathToFileURL(await realpath(script).catch(() => script)).href;
}

/** `--listen` as IPV4:PORT, or undefined. */
export function parseListen(listen: string): { host: string; port: number } | undefined {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(listen);
  return match ? { host: match[1]!, port: Number(match[2]) } : undefined;
}
