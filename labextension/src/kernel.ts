/**
 * The kernel's variables for the context chips, asked for by a silent execution of
 * mistral_magic.context.snapshot (kept in sync with SNIPPET there). Only an idle Python kernel
 * with mistral_magic importable is asked; otherwise the answer says why there are no
 * variables, and the sidebar shows that instead of a chip that silently disappears.
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

/** Why a notebook's variables were not read ('ok': they were). */
export type VariablesState =
  | 'ok'
  | 'no-kernel'
  | 'starting'
  | 'busy'
  | 'other-language'
  | 'no-mistral-magic'
  | 'no-answer';

export interface IKernelVariables {
  state: VariablesState;
  items: IVariableItem[];
  /** The kernel's language, for 'other-language'. */
  language?: string;
}

/** A short label and a sentence for a chip that says why variables are missing. */
export function describeState(
  result: IKernelVariables
): { label: string; title: string } | null {
  switch (result.state) {
    case 'ok':
      return null;
    case 'no-kernel':
      return {
        label: 'no kernel: variables not sent',
        title:
          'The notebook has no running kernel, so no variables or dataframes go with the question. Start a kernel to include them.'
      };
    case 'starting':
      return {
        label: 'kernel starting: variables not read',
        title:
          'The kernel is starting or restarting; its variables are read once it is ready.'
      };
    case 'busy':
      return {
        label: 'kernel busy: variables not read',
        title:
          'The kernel is running a cell; its variables are read when it is idle again (values could change meanwhile).'
      };
    case 'other-language':
      return {
        label: `${result.language || 'this'} kernel: no variables`,
        title:
          'Variables and dataframes are read from Python kernels only; the cells still go with the question.'
      };
    case 'no-mistral-magic':
      return {
        label: 'variables not readable',
        title:
          'mistral_magic cannot be imported in this kernel, so its variables cannot be described. Install mistral-magic in the kernel’s environment to include them.'
      };
    case 'no-answer':
      return {
        label: 'kernel did not answer: variables not read',
        title: `The kernel did not describe its variables within ${TIMEOUT_MS / 1000} s; they are not sent.`
      };
  }
}

export async function kernelVariables(
  panel: NotebookPanel
): Promise<IKernelVariables> {
  let result: IKernelVariables;
  try {
    result = await snapshot(panel);
  } catch {
    result = { state: 'no-answer', items: [] };
  }
  // a kernel that went away while it was asked
  return result.state === 'no-answer' && !runningKernel(panel)
    ? { state: 'no-kernel', items: [] }
    : result;
}

function runningKernel(panel: NotebookPanel) {
  const context = panel.sessionContext;
  const kernel = context.isDisposed ? null : context.session?.kernel;
  return kernel && !kernel.isDisposed && kernel.status !== 'dead'
    ? kernel
    : null;
}

async function snapshot(panel: NotebookPanel): Promise<IKernelVariables> {
  const kernel = runningKernel(panel);
  if (!kernel) {
    return { state: 'no-kernel', items: [] };
  }
  if (kernel.status === 'busy') {
    return { state: 'busy', items: [] };
  }
  if (kernel.status !== 'idle' || kernel.connectionStatus !== 'connected') {
    return { state: 'starting', items: [] };
  }
  let language = '';
  try {
    const info = await kernel.info;
    language = info?.language_info?.name ?? '';
  } catch {
    return { state: 'no-answer', items: [] };
  }
  if (language.toLowerCase() !== 'python') {
    return { state: 'other-language', items: [], language };
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
  let timedOut = false;
  const timeout = new Promise<void>(resolve => {
    timer = window.setTimeout(() => {
      timedOut = true;
      resolve();
    }, TIMEOUT_MS);
  });
  try {
    await Promise.race([future.done, timeout]);
  } catch {
    return { state: 'no-answer', items: [] };
  } finally {
    window.clearTimeout(timer);
  }
  if (timedOut) {
    return { state: 'no-answer', items: [] };
  }
  const line = output.split('\n').find(l => l.startsWith(MARKER));
  if (!line) {
    return { state: 'no-mistral-magic', items: [] };
  }
  try {
    const payload = JSON.parse(line.slice(MARKER.length));
    return {
      state: 'ok',
      items: Array.isArray(payload.items) ? payload.items : []
    };
  } catch {
    return { state: 'no-answer', items: [] };
  }
}
