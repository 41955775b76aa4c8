/** A reply's provenance (made by the server: `mistral_magic/engine/provenance.py`) on the
 * cells its code goes into, as `metadata.mistral`, with the SHA-256 of the code as inserted
 * (the audit compares it with the cell's source to tell edited code). */

import { CellMetadata } from './notebook';

/** The hash `engine/provenance.py:code_hash` takes: line endings as `\n`, trailing blank
 * space dropped. */
function normalized(code: string): string {
  return code.replace(/\r\n/g, '\n').replace(/\s+$/, '');
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    'SHA-256',
    new TextEncoder().encode(text)
  );
  return Array.from(new Uint8Array(digest))
    .map(b => b.toString(16).padStart(2, '0'))
    .join('');
}

/** The hashes of `codes`, computed once the reply is complete (WebCrypto is asynchronous;
 * an Insert is not): a page without WebCrypto (plain HTTP to another host) gets none, and
 * the audit then cannot tell edited code from the inserted. */
export async function codeHashes(
  codes: string[]
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (!globalThis.crypto?.subtle) {
    return found;
  }
  for (const code of codes) {
    found.set(code, await sha256Hex(normalized(code)));
  }
  return found;
}

/** The metadata of a cell that receives `code` from a reply with provenance `record`. */
export function cellMetadata(
  record: Record<string, unknown> | undefined,
  code: string,
  hashes: Map<string, string>
): CellMetadata {
  if (!record) {
    return {};
  }
  const tag: Record<string, unknown> = {
    ...record,
    inserted: new Date().toISOString()
  };
  const hash = hashes.get(code);
  if (hash) {
    tag.code_sha256 = hash;
  } else {
    delete tag.code_sha256;
  }
  return { mistral: tag };
}
