/** A reply's provenance (made by the server: `mistral_magic/engine/provenance.py`) on the
 * cells its code goes into, as `metadata.mistral`, with the SHA-256 of the code as inserted
 * (the audit compares it with the cell's source to tell edited code). An agent task's
 * cells carry the same record (`face: 'agent'`, with the task and its step): see
 * `agentRecord`. */

import { CellMetadata } from './notebook';

/** The hash `engine/provenance.py:code_hash` takes: line endings as `\n`, trailing blank
 * space dropped. */
function normalized(code: string): string {
  return code.replace(/\r\n/g, '\n').replace(/\s+$/, '');
}

/** The record's version (`engine/provenance.py:VERSION`): what `%mistral audit` reads. */
const VERSION = 1;
/** Fields an agent task's cell keeps when the reply's full record arrives at the end. */
const AGENT_FIELDS = [
  'face',
  'kind',
  'question',
  'task',
  'step',
  'timestamp',
  'inserted',
  'code_sha256'
];

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

/** The SHA-256 of `code` as the audit compares it ('' without WebCrypto). */
export async function codeHash(code: string): Promise<string> {
  return globalThis.crypto?.subtle ? sha256Hex(normalized(code)) : '';
}

/** What an agent task knows of its reply before it ends. */
export interface IAgentOrigin {
  model: string;
  question: string;
  task: string;
  step: number;
}

/** The provenance of a cell an agent task wrote (`codeSha256`: the hash of the source it
 * wrote; none for a cell it only ran, which the audit then does not count as its code). */
export function agentRecord(
  origin: IAgentOrigin,
  codeSha256: string
): Record<string, unknown> {
  const now = new Date().toISOString();
  const record: Record<string, unknown> = {
    version: VERSION,
    face: 'agent',
    kind: 'agent',
    question: origin.question,
    model: origin.model,
    task: origin.task,
    step: origin.step,
    timestamp: now,
    inserted: now
  };
  if (codeSha256) {
    record.code_sha256 = codeSha256;
  }
  return record;
}

/** An agent cell's record once the task's reply is complete: the server's record (usage,
 * cost, request id, the body's hash...) under the fields the cell had of its own. */
export function completedAgentRecord(
  cell: Record<string, unknown>,
  reply: Record<string, unknown>
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...reply };
  delete merged.code_sha256; // only the code the task wrote is its code
  for (const key of AGENT_FIELDS) {
    if (key in cell) {
      merged[key] = cell[key];
    }
  }
  return merged;
}
