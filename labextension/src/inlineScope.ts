/**
 * What inline completion knows of a notebook's kernel: the names in scope and the columns
 * and dtypes of its dataframes. Read by a silent execution of
 * mistral_magic.context.snapshot.print_scope (kept in sync with SCOPE_SNIPPET there), once
 * the kernel is idle after each execution — never per keystroke. A kernel that is not
 * Python, or has no mistral_magic, simply gives no scope.
 */

import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

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

/** One notebook's scope: read after each execution once the kernel is idle again. */
export class ScopeWatcher {
  constructor(private readonly panel: NotebookPanel) {
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
    this.reading = read(kernel, this.readMs)
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
  timeoutMs: number
): Promise<IKernelScope | null> {
  try {
    const info = await kernel.info;
    if ((info?.language_info?.name ?? '').toLowerCase() !== 'python') {
      return null;
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
