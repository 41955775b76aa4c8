/**
 * The kernel's variables for the context chips, asked for by a silent execution of
 * mistral_magic.context.snapshot (kept in sync with SNIPPET there). Only an idle Python kernel
 * with mistral_magic importable is asked; otherwise the answer says why there are no
 * variables, and the sidebar shows that instead of a chip that silently disappears.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

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
/** The default bound on waiting for a busy or starting kernel to be idle before it is asked
 * for its variables or tools (the sidebar's `kernelIdleWait` setting, in seconds, overrides
 * it; keep the two defaults equal). It is often busy only for a moment — running our own
 * silent read for the chips, or a cell just run — and asking at once would send a question
 * without its variables and tools; a cell that runs longer than this leaves the question
 * without them (the chip or the note says so) rather than holding it back. */
export const DEFAULT_IDLE_WAIT_MS = 3000;

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
  /** For 'busy': how long the kernel was waited for (ms), which the messages quote. */
  waitedMs?: number;
}

/** A wait in milliseconds as the messages say it: "3 s", "1.5 s". */
export function waitText(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
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
        title: `The kernel was still running a cell after ${waitText(result.waitedMs ?? DEFAULT_IDLE_WAIT_MS)}; its variables are read when it is idle again (values could change meanwhile).`
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

/** The panel's kernel's variables, or why there are none; a busy or starting kernel is
 * waited for at most `idleWaitMs` (the sidebar's setting). */
export async function kernelVariables(
  panel: NotebookPanel,
  idleWaitMs: number
): Promise<IKernelVariables> {
  let result: IKernelVariables;
  try {
    result = await snapshot(panel, idleWaitMs);
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

async function snapshot(
  panel: NotebookPanel,
  idleWaitMs: number
): Promise<IKernelVariables> {
  const ready = await readyPythonKernel(panel, idleWaitMs);
  if (ready.state !== 'ok') {
    return {
      state: ready.state,
      items: [],
      language: ready.language,
      waitedMs: ready.waitedMs
    };
  }
  const answer = await silentRun(ready.kernel!, SNIPPET, MARKER, TIMEOUT_MS);
  if (answer.state !== 'ok') {
    return { state: answer.state, items: [] };
  }
  const payload = answer.payload;
  return {
    state: 'ok',
    items: Array.isArray(payload.items) ? payload.items : []
  };
}

type KernelConnection = Kernel.IKernelConnection;

/** The panel's kernel when it can be asked: running, idle (waited for, at most
 * `idleWaitMs`), Python. 'busy' carries the wait it gave up after, for the messages. */
async function readyPythonKernel(
  panel: NotebookPanel,
  idleWaitMs: number
): Promise<{
  state: VariablesState;
  kernel?: KernelConnection;
  language?: string;
  waitedMs?: number;
}> {
  let kernel = runningKernel(panel);
  if (!kernel) {
    return { state: 'no-kernel' };
  }
  if (!isReady(kernel)) {
    await whenReady(kernel, idleWaitMs);
    kernel = runningKernel(panel); // it may have restarted or gone meanwhile
    if (!kernel) {
      return { state: 'no-kernel' };
    }
  }
  if (kernel.status === 'busy') {
    return { state: 'busy', waitedMs: idleWaitMs };
  }
  if (!isReady(kernel)) {
    return { state: 'starting' };
  }
  const language = await kernelLanguage(kernel);
  if (language === null) {
    return { state: 'no-answer' };
  }
  if (language.toLowerCase() !== 'python') {
    return { state: 'other-language', language };
  }
  return { state: 'ok', kernel };
}

function isReady(kernel: KernelConnection): boolean {
  return kernel.status === 'idle' && kernel.connectionStatus === 'connected';
}

/** Resolves when `kernel` is idle and connected, has ended, or `timeoutMs` passed. */
function whenReady(kernel: KernelConnection, timeoutMs: number): Promise<void> {
  return new Promise<void>(resolve => {
    let timer = 0;
    const check = () => {
      if (isReady(kernel) || KERNEL_ENDED.has(kernel.status)) {
        finish();
      }
    };
    const finish = () => {
      window.clearTimeout(timer);
      kernel.statusChanged.disconnect(check);
      kernel.connectionStatusChanged.disconnect(check);
      resolve();
    };
    kernel.statusChanged.connect(check);
    kernel.connectionStatusChanged.connect(check);
    timer = window.setTimeout(finish, timeoutMs);
    check(); // it may have become ready between the caller's look and now
  });
}

async function kernelLanguage(
  kernel: KernelConnection
): Promise<string | null> {
  try {
    const info = await kernel.info;
    return info?.language_info?.name ?? '';
  } catch {
    return null;
  }
}

/** What a silent execution printed after `marker`, parsed ('no-mistral-magic': the
 * snippet printed no marked line, i.e. mistral_magic did not import). Waits at most
 * `timeoutMs`, and no longer than the kernel lives. */
async function silentRun(
  kernel: KernelConnection,
  code: string,
  marker: string,
  timeoutMs: number
): Promise<{ state: VariablesState; payload?: any; reason?: string }> {
  let output = '';
  let future: Kernel.IShellFuture<
    KernelMessage.IExecuteRequestMsg,
    KernelMessage.IExecuteReplyMsg
  >;
  try {
    future = kernel.requestExecute(
      {
        code,
        silent: true,
        store_history: false,
        allow_stdin: false,
        stop_on_error: false
      },
      true
    );
  } catch {
    return { state: 'no-kernel', reason: 'the kernel is gone' };
  }
  // A restart or shutdown cancels the future, maybe after we stopped waiting for it (the
  // race below): handled here, so that no unhandled rejection reaches the console.
  future.done.catch(() => undefined);
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (KernelMessage.isStreamMsg(msg) && msg.content.name === 'stdout') {
      output += msg.content.text;
    }
  };
  let timer = 0;
  // a holder: TypeScript does not see the callbacks below assign it
  const outcome: { value: 'done' | 'timeout' | 'gone' } = { value: 'done' };
  const timeout = new Promise<void>(resolve => {
    timer = window.setTimeout(() => {
      outcome.value = 'timeout';
      resolve();
    }, timeoutMs);
  });
  // A kernel that dies or restarts never answers: stop waiting at once.
  let onStatus: ((_: KernelConnection, status: Kernel.Status) => void) | null =
    null;
  const gone = new Promise<void>(resolve => {
    onStatus = (_, status) => {
      if (KERNEL_ENDED.has(status)) {
        outcome.value = 'gone';
        resolve();
      }
    };
    kernel.statusChanged.connect(onStatus);
  });
  try {
    await Promise.race([future.done, timeout, gone]);
  } catch {
    return { state: 'no-answer', reason: 'the kernel refused the request' };
  } finally {
    window.clearTimeout(timer);
    if (onStatus) {
      kernel.statusChanged.disconnect(onStatus);
    }
  }
  if (outcome.value === 'timeout') {
    return {
      state: 'no-answer',
      reason: `the kernel did not answer within ${waitText(timeoutMs)}`
    };
  }
  if (outcome.value === 'gone') {
    return { state: 'no-kernel', reason: 'the kernel stopped or restarted' };
  }
  const line = output.split('\n').find(l => l.startsWith(marker));
  if (!line) {
    return {
      state: 'no-mistral-magic',
      reason: 'mistral_magic cannot be imported in the kernel'
    };
  }
  try {
    return { state: 'ok', payload: JSON.parse(line.slice(marker.length)) };
  } catch {
    return { state: 'no-answer', reason: 'the kernel’s answer was not JSON' };
  }
}

/** Kernel states in which a running execution will never answer. */
const KERNEL_ENDED: ReadonlySet<Kernel.Status> = new Set<Kernel.Status>([
  'restarting',
  'autorestarting',
  'terminating',
  'dead'
]);

// -- tools -------------------------------------------------------------------------------

/** Executed with REQUEST replaced by base64 of a JSON request (kept in sync with
 * mistral_magic/kernel_entry.py: the kernel side of the sidebar's tools). */
const TOOL_MARKER = '__mistral_magic_tool__';
const TOOL_SNIPPET = [
  'try:',
  '    import mistral_magic.kernel_entry as _mistral_magic_entry',
  'except Exception:',
  '    pass',
  'else:',
  '    _mistral_magic_entry.serve("REQUEST")',
  '    del _mistral_magic_entry',
  ''
].join('\n');
/** How long the tool definitions may take (a kernel importing pandas for the first time). */
const DEFINITIONS_TIMEOUT_MS = 10000;

/** The tools this kernel offers the model (wire `tools` entries), or why there are none. */
export interface IKernelTools {
  state: VariablesState;
  tools: any[];
  language?: string;
  /** For 'busy': how long the kernel was waited for (ms), which the note quotes. */
  waitedMs?: number;
}

/** The result of one call run in the kernel, as the server's `tool_result` route takes it. */
export interface IToolOutcome {
  status: 'ok' | 'error' | 'declined';
  result: string;
  seconds?: number;
  /** The task this call belonged to stopped (Stop, a kernel restart, the notebook closed)
   * before it had a result: nothing is posted back, since a "declined" result would let
   * the server ask the model again before the stop's cancel reaches it. */
  taskStopped?: boolean;
}

function base64(text: string): string {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

/** The code that hands `request` to mistral_magic.kernel_entry (silent executions). */
export function toolCode(request: Record<string, unknown>): string {
  return TOOL_SNIPPET.replace('REQUEST', base64(JSON.stringify(request)));
}

/** The panel's kernel id, to key what was learnt from that kernel. */
export function kernelId(panel: NotebookPanel): string | null {
  return runningKernel(panel)?.id ?? null;
}

/** Ask the panel's kernel for its tool definitions (an idle Python kernel only; a busy or
 * starting one is waited for at most `idleWaitMs`, the sidebar's setting). */
export async function kernelTools(
  panel: NotebookPanel,
  idleWaitMs: number
): Promise<IKernelTools> {
  const ready = await readyPythonKernel(panel, idleWaitMs);
  if (ready.state !== 'ok') {
    return {
      state: ready.state,
      tools: [],
      language: ready.language,
      waitedMs: ready.waitedMs
    };
  }
  const answer = await silentRun(
    ready.kernel!,
    toolCode({ op: 'definitions' }),
    TOOL_MARKER,
    DEFINITIONS_TIMEOUT_MS
  );
  if (answer.state !== 'ok') {
    return { state: answer.state, tools: [] };
  }
  const tools = answer.payload?.tools;
  return { state: 'ok', tools: Array.isArray(tools) ? tools : [] };
}

/** Run one tool call in the panel's kernel. A busy kernel runs it after the cell it is
 * running (within `timeoutMs`); every failure is an error outcome, for the model to read. */
export async function runKernelTool(
  panel: NotebookPanel,
  name: string,
  args: unknown,
  maxChars: number,
  timeoutMs: number
): Promise<IToolOutcome> {
  const kernel = runningKernel(panel);
  if (!kernel) {
    return {
      status: 'error',
      result: 'Error: the notebook has no running kernel any more.'
    };
  }
  const answer = await silentRun(
    kernel,
    toolCode({ op: 'run', name, arguments: args, max_chars: maxChars }),
    TOOL_MARKER,
    timeoutMs
  );
  if (answer.state !== 'ok') {
    return { status: 'error', result: `Error: ${answer.reason}.` };
  }
  const payload = answer.payload ?? {};
  const status = ['ok', 'error', 'declined'].includes(payload.status)
    ? payload.status
    : 'error';
  return {
    status,
    result: typeof payload.result === 'string' ? payload.result : '',
    seconds: typeof payload.seconds === 'number' ? payload.seconds : undefined
  };
}
