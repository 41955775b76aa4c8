/**
 * What inline completion knows of a notebook's kernel: the names in scope and the columns
 * and dtypes of its dataframes. Read by a silent execution of
 * mistral_magic.context.snapshot.print_scope (kept in sync with SCOPE_SNIPPET there), once
 * the kernel is idle after each execution — never per keystroke. A kernel that is not
 * Python, or has no mistral_magic, simply gives no scope.
 *
 * The same silent execution passes the server's count of the user's inline completions to
 * the kernel (mistral_magic.kernel_entry's `inline_usage`), for `%mistral usage`: the
 * kernel never sees those requests itself.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { toolCode } from './kernel';

const MARKER = '__mistral_magic_scope__';
const SNIPPET = [
  'try:',
  '    import mistral_magic.context.snapshot as _mistral_magic_snapshot',
  'except Exception:',
  '    pass',
  'else:',
  '    _mistral_magic_snapshot.print_scope()',
  '    del _mistral_magic_snapshot',
  ''
].join('\n');

/** Names in scope (chip-style labels) and, per dataframe, its columns and dtypes. */
export interface IKernelScope {
  names: string[];
  frames: { [name: string]: string };
}

/** The server's count of the user's inline completions, as passed to the kernel. */
export interface IUsageCount {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number | null;
}

/** One notebook's scope: read after each execution once the kernel is idle again. */
export class ScopeWatcher {
  /** `usage`: the latest count of inline completions, passed to the kernel at each read. */
  constructor(
    private readonly panel: NotebookPanel,
    private readonly usage: () => IUsageCount | null = () => null
  ) {
    const context = panel.sessionContext;
    context.statusChanged.connect(this.onStatus, this);
    context.kernelChanged.connect(() => {
      this.scope = null;
      this.stale = true;
    });
    panel.disposed.connect(() => {
      context.statusChanged.disconnect(this.onStatus, this);
    });
  }

  /** The latest scope read (null: none yet, or the kernel gives none). */
  scope: IKernelScope | null = null;

  /** A cell ran: read the scope again when the kernel is next idle. */
  invalidate(): void {
    this.stale = true;
    this.onStatus();
  }

  /** The scope for a completion: the one read, or the one being read (right after an
   * execution) if it comes within `waitMs`. A read gives the kernel `readMs` to answer
   * (a slower kernel gives no scope this time): both are the provider's settings. */
  async current(waitMs: number, readMs: number): Promise<IKernelScope | null> {
    this.readMs = readMs;
    this.onStatus();
    if (this.reading) {
      let timer = 0;
      await Promise.race([
        this.reading,
        new Promise<void>(resolve => {
          timer = window.setTimeout(resolve, waitMs);
        })
      ]);
      window.clearTimeout(timer);
    }
    return this.scope;
  }

  private onStatus(): void {
    const kernel = this.panel.sessionContext.session?.kernel;
    if (!this.stale || this.reading || !kernel || kernel.status !== 'idle') {
      return;
    }
    this.stale = false;
    this.reading = read(kernel, this.readMs, this.usage())
      .then(scope => {
        this.scope = scope;
      })
      .finally(() => {
        this.reading = null;
        // a cell ran while reading: read again once idle
        this.onStatus();
      });
  }

  private stale = true;
  private reading: Promise<void> | null = null;
  /** The bound of a read, as the last completion's settings said. */
  private readMs = 5000;
}

async function read(
  kernel: Kernel.IKernelConnection,
  timeoutMs: number,
  usage: IUsageCount | null
): Promise<IKernelScope | null> {
  try {
    const info = await kernel.info;
    if ((info?.language_info?.name ?? '').toLowerCase() !== 'python') {
      return null;
    }
    let output = '';
    let code = SNIPPET;
    if (usage && usage.requests > 0) {
      const { requests, prompt_tokens, completion_tokens, cost } = usage;
      code += toolCode({
        op: 'inline_usage',
        usage: { requests, prompt_tokens, completion_tokens, cost }
      });
    }
    const future = kernel.requestExecute(
      {
        code,
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
      timer = window.setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([future.done, timeout]);
    } finally {
      window.clearTimeout(timer);
    }
    const line = output.split('\n').find(l => l.startsWith(MARKER));
    if (!line) {
      return null;
    }
    const payload = JSON.parse(line.slice(MARKER.length));
    const names = Array.isArray(payload.names)
      ? payload.names.filter((n: unknown) => typeof n === 'string')
      : [];
    const frames: { [name: string]: string } = {};
    if (payload.frames && typeof payload.frames === 'object') {
      for (const [name, text] of Object.entries(payload.frames)) {
        if (typeof text === 'string') {
          frames[name] = text;
        }
      }
    }
    return { names, frames };
  } catch {
    return null; // a kernel going away, or an answer that is not ours
  }
}
