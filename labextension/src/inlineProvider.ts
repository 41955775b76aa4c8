/**
 * Ghost text from Mistral in notebook code cells, through JupyterLab's own inline completer
 * (Tab accepts, Esc dismisses, its debouncer and settings): an IInlineCompletionProvider that
 * asks the server extension (`POST {baseUrl}mistral-magic/complete`, which holds the key and
 * words the request) and streams the insertion back.
 *
 * At most one request per editor is in flight: a new one, typing in the cell, or leaving it
 * aborts the previous fetch, and the server then closes its upstream request.
 */

import {
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider,
  CompletionHandler
} from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { JSONValue } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import { mistralIcon } from './icon';
import { IKernelScope } from './inlineScope';
import { SSEParser } from './sse';

export const PROVIDER_ID = 'mistral-magic';
/** Code of other cells sent along, nearest first, at most this many characters each way
 * (the server clips further, to its own settings). */
const CELLS_CHARS = 32000;

/** Tokens and cost of this user's inline completions since the Jupyter server started. */
export interface IInlineUsage {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Estimated, in USD; null when a model's price is unknown. */
  cost: number | null;
  cost_text: string;
}

/** What the server says about inline completion (`GET complete`). */
export interface IInlineStatus {
  available: boolean;
  mode: 'fim' | 'chat' | 'off';
  model: string;
  reason: string;
  usage: IInlineUsage;
}

/** How long a completion may wait for the kernel's scope (the provider's settings). */
export interface IScopeWaits {
  /** For a read under way (right after an execution), in ms. */
  waitMs: number;
  /** For the kernel to answer a read, in ms. */
  readMs: number;
}

/** The defaults of the provider's settings (Settings Editor -> Inline Completer). */
export const DEFAULT_SCOPE_WAITS: IScopeWaits = { waitMs: 1000, readMs: 5000 };

export interface IProviderOptions {
  /** The kernel scope of a notebook, as last read (read after executions, never per
   * keystroke; the first completion in a notebook waits for the first read). */
  scopeOf: (
    panel: NotebookPanel,
    waits: IScopeWaits
  ) => Promise<IKernelScope | null>;
}

/** One streamed insertion: the text so far, and who waits for more. */
class Insertion {
  text = '';
  done = false;
  error = '';
  private waiters: (() => void)[] = [];

  add(text: string): void {
    this.text += text;
    this.wake();
  }

  finish(error = ''): void {
    if (!this.done) {
      this.done = true;
      this.error = error;
      this.wake();
    }
  }

  /** Resolves at the next change (more text, or the end). */
  changed(): Promise<void> {
    return this.done
      ? Promise.resolve()
      : new Promise(resolve => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach(wake => wake());
  }
}

export class MistralInlineProvider implements IInlineCompletionProvider {
  readonly identifier = PROVIDER_ID;
  readonly name = 'Mistral';
  readonly icon = mistralIcon;

  constructor(private readonly options: IProviderOptions) {}

  /** This provider's entry in the Inline Completer settings: on (the server still says
   * whether a model server is configured), a 250 ms debounce, a timeout for the first text
   * (the rest streams in after it), and the bounds of the waits for the kernel's scope. */
  get schema(): ISettingRegistry.IProperty {
    return {
      properties: {
        scopeWait: {
          title: 'Kernel scope wait',
          description:
            "How long a completion right after a cell ran waits for the kernel's names " +
            'and dataframe columns being read (in milliseconds); a later read serves the ' +
            'next completion.',
          type: 'number',
          minimum: 0
        },
        scopeTimeout: {
          title: 'Kernel scope timeout',
          description:
            'The longest wait for the kernel to answer the silent read of its names and ' +
            'dataframe columns (in milliseconds); a busier kernel gives none this time.',
          type: 'number',
          minimum: 0
        }
      },
      default: {
        enabled: true,
        debouncerDelay: 250,
        timeout: 15000,
        scopeWait: DEFAULT_SCOPE_WAITS.waitMs,
        scopeTimeout: DEFAULT_SCOPE_WAITS.readMs
      } as any
    };
  }

  configure(settings: { [property: string]: JSONValue }): void {
    this.enabled = settings.enabled !== false;
    this.scopeWaits = {
      waitMs: milliseconds(settings.scopeWait, DEFAULT_SCOPE_WAITS.waitMs),
      readMs: milliseconds(settings.scopeTimeout, DEFAULT_SCOPE_WAITS.readMs)
    };
    this.changedSignal.emit();
  }

  /** The bounds of the waits for the kernel's scope, from the settings. */
  scopeWaits: IScopeWaits = { ...DEFAULT_SCOPE_WAITS };

  /** Whether the user has it on (the Settings Editor, the status bar). */
  enabled = true;
  /** What the server said: null until asked. */
  status: IInlineStatus | null = null;

  /** Settings, server status or usage changed (for the status bar and the sidebar). */
  get changed(): ISignal<this, void> {
    return this.changedSignal;
  }

  async refreshStatus(): Promise<void> {
    try {
      const response = await ServerConnection.makeRequest(
        completeUrl(),
        { method: 'GET' },
        ServerConnection.makeSettings()
      );
      if (response.ok) {
        this.status = (await response.json()) as IInlineStatus;
        this.changedSignal.emit();
      }
    } catch {
      // the status bar keeps its last word; fetch() asks again anyway
    }
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList<IInlineCompletionItem>> {
    const panel = context.widget;
    if (!(panel instanceof NotebookPanel)) {
      return { items: [] };
    }
    const cell = panel.content.activeCell;
    if (!cell || cell.model.type !== 'code') {
      return { items: [] };
    }
    if (this.status === null) {
      await this.refreshStatus();
    }
    if (!this.status?.available) {
      return { items: [] };
    }
    this.cancel(cell); // never two requests for one editor
    const scope = await this.options.scopeOf(panel, this.scopeWaits);
    if (cell.model.sharedModel.getSource() !== request.text) {
      return { items: [] }; // typed on while the scope was read: a newer fetch follows
    }
    const insertion = this.start(panel, cell, request, scope);
    while (!insertion.text && !insertion.done) {
      await insertion.changed();
    }
    if (!insertion.text) {
      return insertion.error
        ? { items: [{ insertText: '', error: { message: insertion.error } }] }
        : { items: [] };
    }
    if (insertion.done) {
      return { items: [{ insertText: insertion.text }] }; // nothing left to stream
    }
    // JupyterLab calls stream(token) for an incomplete item, or never (typed on, dismissed):
    // a cell keeps at most its latest token, so unclaimed insertions do not pile up.
    const token = `mm-${++this.counter}`;
    this.dropStream(cell);
    this.streams.set(token, insertion);
    this.tokens.set(cell, token);
    return {
      items: [{ insertText: insertion.text, isIncomplete: true, token }]
    };
  }

  async *stream(
    token: string
  ): AsyncGenerator<{ response: IInlineCompletionItem }, void, unknown> {
    const insertion = this.streams.get(token);
    this.streams.delete(token);
    if (!insertion) {
      return;
    }
    let shown = insertion.text;
    while (!insertion.done) {
      await insertion.changed();
      if (insertion.text !== shown || insertion.done) {
        shown = insertion.text;
        yield {
          response: {
            insertText: shown,
            isIncomplete: !insertion.done,
            error: insertion.error ? { message: insertion.error } : undefined
          }
        };
      }
    }
  }

  /** Forget the insertion this cell's last item could still stream. */
  private dropStream(cell: Cell): void {
    const token = this.tokens.get(cell);
    if (token !== undefined) {
      this.tokens.delete(cell);
      this.streams.delete(token);
    }
  }

  /** Abort the request of this cell's editor, if one is in flight. */
  cancel(cell: Cell): void {
    const running = this.inFlight.get(cell);
    if (running) {
      this.inFlight.delete(cell);
      running.abort();
    }
  }

  private start(
    panel: NotebookPanel,
    cell: Cell,
    request: CompletionHandler.IRequest,
    scope: IKernelScope | null
  ): Insertion {
    const insertion = new Insertion();
    const controller = new AbortController();
    // Typing on (or accepting) changes the cell: what is in flight is for old text.
    const onChange = () => this.cancel(cell);
    cell.model.contentChanged.connect(onChange);
    const stop = () => {
      cell.model.contentChanged.disconnect(onChange);
      insertion.finish();
    };
    controller.signal.addEventListener('abort', stop);
    const entry = { abort: () => controller.abort() };
    this.inFlight.set(cell, entry);

    const body = {
      editor: cell.model.id,
      path: panel.context.path,
      ...neighbours(panel, cell),
      prefix: request.text.slice(0, request.offset),
      suffix: request.text.slice(request.offset),
      scope
    };
    void post(body, controller.signal, {
      delta: text => insertion.add(text),
      usage: usage => {
        if (this.status) {
          this.status.usage = usage;
          this.changedSignal.emit();
        }
      },
      error: message => insertion.finish(message)
    })
      .catch(error => {
        if (!controller.signal.aborted) {
          insertion.finish(String(error?.message ?? error));
        }
      })
      .finally(() => {
        if (this.inFlight.get(cell) === entry) {
          this.inFlight.delete(cell);
        }
        stop();
      });
    return insertion;
  }

  private changedSignal = new Signal<this, void>(this);
  private inFlight = new WeakMap<Cell, { abort: () => void }>();
  private streams = new Map<string, Insertion>();
  private tokens = new WeakMap<Cell, string>();
  private counter = 0;
}

/** A setting in milliseconds: a number of 0 or more, else the default. */
function milliseconds(value: JSONValue | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? value
    : fallback;
}

function completeUrl(): string {
  return URLExt.join(
    ServerConnection.makeSettings().baseUrl,
    'mistral-magic',
    'complete'
  );
}

/** The code cells before and after `cell`, nearest first, within CELLS_CHARS each way;
 * returned in notebook order. */
function neighbours(
  panel: NotebookPanel,
  cell: Cell
): { before: string[]; after: string[] } {
  const cells = panel.content.widgets;
  const index = cells.indexOf(cell);
  const take = (indices: number[]): string[] => {
    const taken: string[] = [];
    let size = 0;
    for (const i of indices) {
      const other = cells[i];
      if (other.model.type !== 'code') {
        continue;
      }
      const source = other.model.sharedModel.getSource();
      if (size + source.length > CELLS_CHARS) {
        break;
      }
      size += source.length;
      taken.push(source);
    }
    return taken;
  };
  const before: number[] = [];
  for (let i = index - 1; i >= 0; i--) {
    before.push(i);
  }
  const after: number[] = [];
  for (let i = index + 1; i < cells.length; i++) {
    after.push(i);
  }
  return { before: take(before).reverse(), after: take(after) };
}

interface IHandlers {
  delta: (text: string) => void;
  usage: (usage: IInlineUsage) => void;
  error: (message: string) => void;
}

/** POST the request; dispatch the server's events until the stream ends or is aborted. */
async function post(
  body: unknown,
  signal: AbortSignal,
  handlers: IHandlers
): Promise<void> {
  const response = await ServerConnection.makeRequest(
    completeUrl(),
    {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        Accept: 'text/event-stream',
        'Content-Type': 'application/json'
      },
      signal
    },
    ServerConnection.makeSettings()
  );
  if (!response.ok || !response.body) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).message || detail;
    } catch {
      // not JSON
    }
    throw new Error(
      `Mistral inline completion failed (${response.status}: ${detail})`
    );
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    for (const { event, data } of parser.feed(
      decoder.decode(value, { stream: true })
    )) {
      if (event === 'delta' && typeof data.text === 'string') {
        handlers.delta(data.text);
      } else if (event === 'usage' && data.session) {
        handlers.usage(data.session as IInlineUsage);
      } else if (event === 'error') {
        handlers.error(String(data.message ?? 'error'));
      }
    }
  }
}
