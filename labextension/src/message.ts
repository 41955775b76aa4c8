/** One message in the sidebar: Markdown rendered by JupyterLab's rendermime (code highlighted,
 * theme-aware; raw HTML shown as text), code blocks with Insert below / Replace active cell /
 * Copy, tables that scroll sideways in their own box, and a footer with model, tokens and
 * cost, or a one-paragraph error under whatever arrived before it. */

import { Clipboard } from '@jupyterlab/apputils';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { escapeRawHTML } from './markdown';
import { CellMetadata } from './notebook';
import { cellMetadata, codeHashes } from './provenance';
import { ICostCheck, IToolResult, IUsage } from './types';

/** Where inserted code went, told under the code block; `here` offers the notebook in view
 * when the code went elsewhere. */
export interface IInsertOutcome {
  note: string;
  here?: { label: string; run: () => IInsertOutcome };
}

/** `metadata`: the reply's provenance for the cell (`{"mistral": ...}`), or none. */
export interface ICodeActions {
  insertBelow(code: string, metadata?: CellMetadata): IInsertOutcome;
  replaceActive(code: string, metadata?: CellMetadata): IInsertOutcome;
}

export class MessageView extends Widget {
  constructor(
    private readonly role: 'user' | 'assistant',
    private readonly rendermime: IRenderMimeRegistry,
    private readonly actions: ICodeActions | null
  ) {
    super();
    this.addClass('mm-Message');
    this.addClass(role === 'user' ? 'mm-Message-user' : 'mm-Message-assistant');
    this.body = document.createElement('div');
    this.body.className = 'mm-Message-body';
    this.footer = document.createElement('div');
    this.footer.className = 'mm-Message-footer';
    this.node.append(this.body, this.footer);
    if (role === 'assistant') {
      this.renderer = rendermime.createRenderer('text/markdown');
      this.renderer.addClass('mm-Message-markdown');
      this.body.appendChild(this.renderer.node);
    }
  }

  /** The whole text so far; rendering is coalesced to one per animation frame. */
  get text(): string {
    return this._text;
  }

  set text(value: string) {
    this._text = value;
    if (this.role === 'user') {
      this.body.textContent = value;
      return;
    }
    this.scheduleRender();
  }

  append(delta: string): void {
    this.text = this._text + delta;
  }

  /** A reasoning model's thinking: collapsed (a closed `<details>`) under the answer, its
   * summary counting words as they come; rendered as sanitized Markdown (raw HTML shown as
   * text), and only while open: a long thinking costs nothing while collapsed. */
  appendThinking(delta: string): void {
    if (!this.thinking) {
      this.thinking = new ThinkingView(this.rendermime);
      this.node.insertBefore(this.thinking.node, this.footer);
    }
    this.thinking.append(delta);
  }

  /** The thinking so far ('' when the model did not think aloud). */
  get thinkingText(): string {
    return this.thinking?.text ?? '';
  }

  set streaming(value: boolean) {
    this.toggleClass('mm-mod-streaming', value);
    if (!value) {
      this.scheduleRender();
    }
  }

  setChips(labels: string[]): void {
    if (!labels.length) {
      return;
    }
    const chips = document.createElement('div');
    chips.className = 'mm-Message-context';
    chips.textContent = `with ${labels.join(', ')}`;
    this.node.insertBefore(chips, this.body);
  }

  /** A tool call as one line above the answer: its signature, then (once done) its status,
   * time and the result folded under it. Model and kernel text, so text nodes only. */
  showTool(call: IToolResult): void {
    this.ensureTools();
    const id = call.call_id ?? `call-${this.toolLines.size}`;
    let line = this.toolLines.get(id);
    if (!line) {
      line = document.createElement('details');
      line.className = 'mm-Tool';
      line.dataset.callId = id;
      this.toolLines.set(id, line);
      this.tools!.appendChild(line);
    }
    line.className = `mm-Tool mm-mod-${call.status}`;
    line.dataset.tool = call.name;
    const summary = document.createElement('summary');
    summary.className = 'mm-Tool-summary';
    const signature = document.createElement('code');
    signature.className = 'mm-Tool-signature';
    signature.textContent = call.signature;
    const state = document.createElement('span');
    state.className = 'mm-Tool-state';
    state.textContent =
      call.status === 'running'
        ? ' · running…'
        : ` · ${call.status}${call.seconds !== undefined ? ` · ${call.seconds.toFixed(2)} s` : ''}`;
    summary.append(signature, state);
    const result = document.createElement('pre');
    result.className = 'mm-Tool-result';
    result.textContent = call.result;
    line.replaceChildren(summary, result);
  }

  /** An agent's card (an approval, the task's bar) in the order of the tool lines. */
  attach(node: HTMLElement): void {
    this.ensureTools().appendChild(node);
  }

  private ensureTools(): HTMLDivElement {
    if (!this.tools) {
      this.tools = document.createElement('div');
      this.tools.className = 'mm-Tools';
      this.node.insertBefore(this.tools, this.body);
    }
    return this.tools;
  }

  /** The reply's provenance (the server's `provenance` event, or the history entry's):
   * the cells its code goes into carry it. `data-provenance` tells when it is ready. */
  setProvenance(record: Record<string, unknown> | undefined): void {
    this.provenance = record;
    void this.hashed.then(() => {
      if (this.provenance) {
        this.node.dataset.provenance = 'ready';
      }
    });
  }

  /** Nothing was sent: the cost guard wants a confirmation. Its reason and what the
   * request holds and may cost (as text: they quote model ids and labels), then Send or
   * Cancel (each once). */
  askToConfirm(
    check: ICostCheck,
    onSend: () => void,
    onCancel: () => void
  ): void {
    const box = document.createElement('div');
    box.className = 'mm-Confirm';
    const reason = document.createElement('div');
    reason.className = 'mm-Confirm-reason';
    reason.textContent = check.reason;
    const summary = document.createElement('div');
    summary.className = 'mm-Confirm-summary';
    summary.textContent = check.summary;
    const decide = (send: boolean) => {
      box.remove();
      (send ? onSend : onCancel)();
    };
    const send = button('Send', 'Send this question', () => decide(true));
    send.classList.add('mm-Confirm-send');
    const cancel = button('Cancel', 'Send nothing', () => decide(false));
    cancel.classList.add('mm-Confirm-cancel');
    const actions = document.createElement('div');
    actions.className = 'mm-Confirm-actions';
    actions.append(send, cancel);
    box.append(reason, summary, actions);
    this.node.insertBefore(box, this.footer);
  }

  private metadataFor(code: string): CellMetadata {
    return cellMetadata(this.provenance, code, this.hashes);
  }

  setUsage(usage: IUsage): void {
    const parts = [usage.model];
    if (
      usage.prompt_tokens !== undefined &&
      usage.completion_tokens !== undefined
    ) {
      parts.push(
        `${usage.prompt_tokens.toLocaleString()} → ${usage.completion_tokens.toLocaleString()} tokens`
      );
    }
    parts.push(usage.cost_text);
    this.footer.textContent = parts.join(' · ');
  }

  setNote(text: string): void {
    const note = document.createElement('div');
    note.className = 'mm-Message-note';
    note.textContent = text;
    this.node.appendChild(note);
  }

  setError(message: string): void {
    const error = document.createElement('div');
    error.className = 'mm-Message-error jp-RenderedText';
    error.setAttribute('role', 'alert');
    error.textContent = message;
    this.node.appendChild(error);
  }

  /** Resolves when the latest text is on screen. */
  get rendered(): Promise<void> {
    return this._rendered ?? Promise.resolve();
  }

  private scheduleRender(): void {
    if (this._frame) {
      return;
    }
    this._rendered = new Promise<void>(resolve => {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        void this.render().then(resolve, resolve);
      });
    });
  }

  private async render(): Promise<void> {
    if (!this.renderer) {
      return;
    }
    const model = new MimeModel({
      data: { 'text/markdown': escapeRawHTML(this._text) },
      trusted: false
    });
    await this.renderer.renderModel(model);
    this.decorateTables();
    this.decorateCode();
  }

  /** Each table in a box of its own that scrolls sideways, so a wide table neither widens
   * the message nor is squeezed into tall rows. */
  private decorateTables(): void {
    for (const table of Array.from(
      this.renderer!.node.querySelectorAll('table')
    )) {
      if (table.parentElement?.classList.contains('mm-Table')) {
        continue;
      }
      const box = document.createElement('div');
      box.className = 'mm-Table';
      table.replaceWith(box);
      box.appendChild(table);
    }
  }

  private decorateCode(): void {
    for (const pre of Array.from(this.renderer!.node.querySelectorAll('pre'))) {
      if (pre.parentElement?.classList.contains('mm-Code')) {
        continue;
      }
      const wrapper = document.createElement('div');
      wrapper.className = 'mm-Code';
      pre.replaceWith(wrapper);
      const bar = document.createElement('div');
      bar.className = 'mm-Code-actions';
      const code = () => (pre.textContent ?? '').replace(/\n$/, '');
      // Hashed now (WebCrypto is asynchronous, a click is not): the cell's provenance
      // holds the hash of the code as inserted.
      const source = code();
      this.hashed = this.hashed
        .then(() => codeHashes([source]))
        .then(found =>
          found.forEach((hash, key) => this.hashes.set(key, hash))
        );
      if (this.actions) {
        const actions = this.actions;
        bar.append(
          button(
            'Insert below',
            'Insert as a new cell below the active cell (not run)',
            () =>
              this.act(wrapper, () =>
                actions.insertBelow(code(), this.metadataFor(code()))
              )
          ),
          button(
            'Replace cell',
            'Replace the active cell’s source (not run)',
            () =>
              this.act(wrapper, () =>
                actions.replaceActive(code(), this.metadataFor(code()))
              )
          )
        );
      }
      bar.append(
        button(
          'Copy',
          'Copy the code',
          () => Clipboard.copyToSystem(code()),
          'Copied'
        )
      );
      wrapper.append(bar, pre);
    }
  }

  private act(wrapper: HTMLElement, action: () => IInsertOutcome): void {
    try {
      this.told(wrapper, action());
    } catch (error) {
      this.told(wrapper, { note: String((error as Error).message ?? error) });
      throw error; // the button shows "Failed"
    }
  }

  /** Say under the code block where the code went (and offer the notebook in view). */
  private told(wrapper: HTMLElement, outcome: IInsertOutcome): void {
    let line = wrapper.querySelector<HTMLElement>(':scope > .mm-Code-outcome');
    if (!line) {
      line = document.createElement('div');
      line.className = 'mm-Code-outcome';
      line.setAttribute('role', 'status');
      wrapper.appendChild(line);
    }
    const text = document.createElement('span');
    text.textContent = outcome.note;
    line.replaceChildren(text);
    const here = outcome.here;
    if (here) {
      line.append(
        button(
          here.label,
          'Put the code into the notebook you are looking at',
          () => this.act(wrapper, here.run)
        )
      );
    }
  }

  private body: HTMLDivElement;
  private footer: HTMLDivElement;
  private provenance: Record<string, unknown> | undefined;
  private readonly hashes = new Map<string, string>();
  private hashed: Promise<void> = Promise.resolve();
  private thinking: ThinkingView | null = null;
  private tools: HTMLDivElement | null = null;
  private toolLines = new Map<string, HTMLDetailsElement>();
  private renderer: IRenderMime.IRenderer | null = null;
  private _text = '';
  private _frame = 0;
  private _rendered: Promise<void> | null = null;
}

/** The thinking of a reasoning model, collapsed by default. */
class ThinkingView {
  constructor(rendermime: IRenderMimeRegistry) {
    this.node = document.createElement('details');
    this.node.className = 'mm-Thinking';
    this.summary = document.createElement('summary');
    this.summary.className = 'mm-Thinking-summary';
    this.renderer = rendermime.createRenderer('text/markdown');
    this.renderer.addClass('mm-Thinking-body');
    this.node.append(this.summary, this.renderer.node);
    this.node.addEventListener('toggle', () => this.schedule());
    this.showSummary();
  }

  readonly node: HTMLDetailsElement;
  text = '';

  append(delta: string): void {
    // words that start in this piece: one cut between two pieces counts once
    const continues = this.text !== '' && !/\s$/.test(this.text);
    this.words +=
      (delta.match(/\s\S/g) || []).length +
      (/^\S/.test(delta) && !continues ? 1 : 0);
    this.text += delta;
    this.showSummary();
    this.schedule();
  }

  private showSummary(): void {
    const n = this.words;
    this.summary.textContent = `Reasoning · ${n.toLocaleString()} word${n === 1 ? '' : 's'}`;
  }

  private schedule(): void {
    if (!this.node.open || this.frame) {
      return;
    }
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.node.open && this.shown !== this.text) {
        this.shown = this.text;
        const model = new MimeModel({
          data: { 'text/markdown': escapeRawHTML(this.text) },
          trusted: false
        });
        void this.renderer.renderModel(model);
      }
    });
  }

  private readonly summary: HTMLElement;
  private readonly renderer: IRenderMime.IRenderer;
  private words = 0;
  private shown = '';
  private frame = 0;
}

function button(
  label: string,
  title: string,
  onClick: () => void,
  done?: string
): HTMLButtonElement {
  const element = document.createElement('button');
  element.type = 'button';
  element.className = 'jp-Button jp-mod-minimal mm-Code-action';
  element.textContent = label;
  element.title = title;
  element.addEventListener('click', event => {
    event.preventDefault();
    let shown = done ?? label;
    try {
      onClick();
    } catch (error) {
      shown = 'Failed';
      element.title = String((error as Error).message ?? error);
    }
    if (shown !== label) {
      element.textContent = shown;
      window.setTimeout(() => {
        element.textContent = label;
        element.title = title;
      }, 2000);
    }
  });
  return element;
}
