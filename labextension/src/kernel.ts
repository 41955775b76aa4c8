/**
 * The kernel's variables for the context chips, asked for by a silent execution of
 * mistral_magic.context.snapshot (kept in sync with SNIPPET there). Kernels that are not
 * Python, busy, or without mistral_magic importable simply give no variables.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { IVariableItem } from './types';

const MARKER = '__mistral_magic_snapshot__';
const SNIPPET = [
  'try:',
  '    import mistral_magic.context.snapshot as _mistral_magic_snapshot',
  'except Exception:',
  '    pass',
  'else:',
  '    _mistral_magic_snapshot.print_snapshot()',
  '    del _mistral_magic_snapshot',
  ''
].join('\n');
const TIMEOUT_MS = 5000;

export async function kernelVariables(
  panel: NotebookPanel
): Promise<IVariableItem[]> {
  try {
    return await snapshot(panel);
  } catch {
    return []; // a kernel going away mid-request: no variable chips this time
  }
}

async function snapshot(panel: NotebookPanel): Promise<IVariableItem[]> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel || kernel.status !== 'idle') {
    return [];
  }
  let language = '';
  try {
    const info = await kernel.info;
    language = info?.language_info?.name ?? '';
  } catch {
    return [];
  }
  if (language.toLowerCase() !== 'python') {
    return [];
  }
  let output = '';
  const future = kernel.requestExecute(
    {
      code: SNIPPET,
      silent: true,
      store_history: false,
      allow_stdin: false,
      stop_on_error: false
    },
    true
  );
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (KernelMessage.isStreamMsg(msg) && msg.content.name === 'stdout') {
      output += msg.content.text;
    }
  };
  let timer = 0;
  const timeout = new Promise<void>(resolve => {
    timer = window.setTimeout(resolve, TIMEOUT_MS);
  });
  try {
    await Promise.race([future.done, timeout]);
  } catch {
    return [];
  } finally {
    window.clearTimeout(timer);
  }
  const line = output.split('\n').find(l => l.startsWith(MARKER));
  if (!line) {
    return [];
  }
  try {
    const payload = JSON.parse(line.slice(MARKER.length));
    return Array.isArray(payload.items) ? payload.items : [];
  } catch {
    return [];
  }
}
