/** The Mistral sidebar: conversation, context chips, input with Send / Stop, New chat. */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { addIcon } from '@jupyterlab/ui-components';
import { UUID } from '@lumino/coreutils';
import { Panel, Widget } from '@lumino/widgets';

import { cancelChat, requestAPI, streamChat } from './api';
import { mistralIcon } from './icon';
import { kernelVariables } from './kernel';
import { MessageView } from './message';
import {
  insertBelow,
  notebookJSON,
  replaceActive,
  selectedText
} from './notebook';
import {
  IChatRequest,
  IChip,
  IHistoryEntry,
  IServerConfig,
  IVariableItem
} from './types';

export interface IChatSettings {
  model: string;
  temperature: number | null;
  contextBudget: number | null;
  defaultContext: {
    notebook: boolean;
    activeCell: boolean;
    error: boolean;
    variables: boolean;
  };
}

export const DEFAULT_SETTINGS: IChatSettings = {
  model: '',
  temperature: null,
  contextBudget: null,
  defaultContext: {
    notebook: true,
    activeCell: true,
    error: true,
    variables: true
  }
};

export interface IAskOptions {
  /** Ask about the error of this cell (index in the notebook): Explain / Fix. */
  errorCell?: number;
  panel?: NotebookPanel | null;
  /** Explain or fix the error: the server words the question (`prompt` is its label). */
  kind?: 'explain' | 'fix';
}

export class ChatSidebar extends Panel {
  constructor(
    private readonly tracker: INotebookTracker,
    private readonly rendermime: IRenderMimeRegistry
  ) {
    super();
    this.id = 'mistral-magic-sidebar';
    this.addClass('mm-Sidebar');
    this.title.icon = mistralIcon;
    this.title.caption = 'Mistral chat';

    const header = document.createElement('div');
    header.className = 'mm-Header';
    this.modelLabel = document.createElement('span');
    this.modelLabel.className = 'mm-Model';
    const title = document.createElement('span');
    title.className = 'mm-Title';
    title.append('Mistral ', this.modelLabel);
    const newChat = document.createElement('button');
    newChat.type = 'button';
    newChat.className = 'jp-Button jp-mod-minimal mm-NewChat';
    newChat.title = 'Start a new chat (clears the history)';
    newChat.append(
      addIcon.element({ tag: 'span', className: 'mm-NewChat-icon' }),
      'New chat'
    );
    newChat.addEventListener('click', () => void this.newChat());
    header.append(title, newChat);

    this.notice = document.createElement('div');
    this.notice.className = 'mm-Notice';
    this.notice.hidden = true;

    this.messages = new Panel();
    this.messages.addClass('mm-Messages');

    this.chips = document.createElement('div');
    this.chips.className = 'mm-Chips';
    this.chips.setAttribute('aria-label', 'Context that will be sent');

    const form = document.createElement('form');
    form.className = 'mm-Input';
    this.input = document.createElement('textarea');
    this.input.className = 'mm-Input-text jp-mod-styled';
    this.input.rows = 3;
    this.input.placeholder =
      'Ask Mistral about this notebook… (Enter to send, Shift+Enter for a new line)';
    this.input.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.sendButton = document.createElement('button');
    this.sendButton.type = 'submit';
    this.sendButton.className = 'jp-Button jp-mod-accept mm-Send';
    this.sendButton.textContent = 'Send';
    this.stopButton = document.createElement('button');
    this.stopButton.type = 'button';
    this.stopButton.className = 'jp-Button jp-mod-warn mm-Stop';
    this.stopButton.textContent = 'Stop';
    this.stopButton.hidden = true;
    this.stopButton.addEventListener('click', () => this.stop());
    const buttons = document.createElement('div');
    buttons.className = 'mm-Input-buttons';
    buttons.append(this.stopButton, this.sendButton);
    form.append(this.input, buttons);
    form.addEventListener('submit', event => {
      event.preventDefault();
      const prompt = this.input.value.trim();
      if (prompt && !this.busy) {
        this.input.value = '';
        void this.ask(prompt);
      }
    });

    this.addWidget(new Widget({ node: header }));
    this.addWidget(new Widget({ node: this.notice }));
    this.addWidget(this.messages);
    this.addWidget(new Widget({ node: this.chips }));
    this.addWidget(new Widget({ node: form }));

    tracker.currentChanged.connect(() => {
      this.excluded.clear();
      this.scheduleChips(true);
    });
    tracker.activeCellChanged.connect(() => this.scheduleChips(false));
  }

  set settings(value: IChatSettings) {
    this._settings = value;
    this.showModel();
    this.scheduleChips(false);
  }

  /** Load the server's config and this user's history. */
  async start(): Promise<void> {
    try {
      this.config = await requestAPI<IServerConfig>('config');
      this.showModel();
      if (!this.config.api_key_configured && this.config.dialect !== 'openai') {
        this.showNotice(
          'No Mistral API key is configured on the Jupyter server. Set MISTRAL_API_KEY in ' +
            'the environment before starting Jupyter (or MISTRAL_BASE_URL for a self-hosted ' +
            'server). The key stays on the server; the browser only learns that it is set.'
        );
      }
    } catch (error) {
      this.showNotice(String((error as Error).message ?? error));
    }
    try {
      const history = await requestAPI<{ entries: IHistoryEntry[] }>('history');
      this.restore(history.entries);
    } catch {
      // history is a convenience
    }
  }

  get busy(): boolean {
    return this.controller !== null;
  }

  /** Ask `prompt` with the current context; the reply streams into the sidebar. */
  async ask(prompt: string, options: IAskOptions = {}): Promise<void> {
    if (this.busy) {
      this.stop();
    }
    const panel = options.panel ?? this.tracker.currentWidget;
    const requestId = UUID.uuid4().replace(/-/g, '');
    let body: IChatRequest;
    try {
      body = await this.requestBody(prompt, panel, options.errorCell);
    } catch (error) {
      console.warn('mistral-magic: context not collected', error);
      body = { prompt, sources: [] };
    }
    body.request_id = requestId;
    if (options.kind) {
      body.kind = options.kind;
      body.prompt = '';
    }

    const question = new MessageView('user', this.rendermime, null);
    question.text = prompt;
    this.messages.addWidget(question);
    const answer = new MessageView(
      'assistant',
      this.rendermime,
      this.codeActions(panel)
    );
    answer.streaming = true;
    this.messages.addWidget(answer);
    this.scrollToEnd();

    const controller = new AbortController();
    this.controller = controller;
    this.requestId = requestId;
    this.setBusy(true);
    let failed = false;
    try {
      await streamChat(
        body,
        {
          context: data => {
            question.setChips(
              data.chips.filter(c => c.state !== 'omitted').map(c => c.label)
            );
            this.renderChips(data.chips);
            if (data.note) {
              answer.setNote(data.note);
            }
          },
          delta: text => {
            answer.append(text);
            this.scrollToEnd();
          },
          usage: usage => answer.setUsage(usage),
          error: data => {
            failed = true;
            answer.setError(data.message);
          },
          toolCall: data =>
            answer.setNote(`Tool call: ${data.name}(${data.arguments})`)
        },
        controller.signal
      );
    } catch (error) {
      if ((error as Error).name === 'AbortError') {
        answer.setNote('Stopped.');
      } else if (!failed) {
        answer.setError(String((error as Error).message ?? error));
      }
    } finally {
      answer.streaming = false;
      if (this.controller === controller) {
        this.controller = null;
        this.requestId = '';
        this.setBusy(false);
      }
      this.scrollToEnd();
    }
  }

  /** Stop the running answer: abort the stream and tell the server to cancel upstream. */
  stop(): void {
    if (this.controller) {
      const requestId = this.requestId;
      this.controller.abort();
      if (requestId) {
        void cancelChat(requestId);
      }
    }
  }

  async newChat(): Promise<void> {
    this.stop();
    try {
      await requestAPI('history', { method: 'DELETE' });
    } catch (error) {
      this.showNotice(String((error as Error).message ?? error));
    }
    for (const widget of [...this.messages.widgets]) {
      widget.dispose();
    }
    this.excluded.clear();
    this.scheduleChips(true);
  }

  focusInput(): void {
    this.input.focus();
  }

  protected onAfterShow(): void {
    this.scheduleChips(true);
  }

  // -- context ---------------------------------------------------------------------------

  private sources(): string[] {
    const c = this._settings.defaultContext;
    const sources: string[] = [];
    if (c.notebook) {
      sources.push('cells');
    }
    if (c.activeCell) {
      sources.push('active');
    }
    if (c.error) {
      sources.push('error');
    }
    if (c.variables) {
      sources.push('vars');
    }
    return sources;
  }

  private async requestBody(
    prompt: string,
    panel: NotebookPanel | null,
    errorCell?: number
  ): Promise<IChatRequest> {
    const s = this._settings;
    const body: IChatRequest = {
      prompt,
      sources: this.sources(),
      exclude: [...this.excluded],
      model: s.model || null,
      temperature: s.temperature,
      context_budget: s.contextBudget
    };
    if (panel) {
      body.notebook = notebookJSON(panel);
      body.notebook_path = panel.context.path;
      body.active_cell = errorCell ?? panel.content.activeCellIndex;
      body.selection = errorCell === undefined ? selectedText(panel) : '';
      if (errorCell !== undefined) {
        body.error_cell = errorCell;
        body.exclude = body.exclude?.filter(id => id !== 'error');
      }
      if (body.sources.includes('vars')) {
        body.variables = await this.variables(panel);
      }
    }
    return body;
  }

  private async variables(panel: NotebookPanel): Promise<IVariableItem[]> {
    const cached = this.variableCache.get(panel);
    if (cached && cached.generation === this.generation) {
      return cached.items;
    }
    const items = await kernelVariables(panel);
    this.variableCache.set(panel, { generation: this.generation, items });
    return items;
  }

  /** Something ran in a notebook: its variables may have changed. */
  invalidateVariables(): void {
    this.generation += 1;
    this.scheduleChips(false);
  }

  scheduleChips(immediate: boolean): void {
    if (!this.isVisible) {
      return;
    }
    window.clearTimeout(this.chipTimer);
    this.chipTimer = window.setTimeout(
      () => void this.refreshChips(),
      immediate ? 0 : 400
    );
  }

  private async refreshChips(): Promise<void> {
    if (this.busy) {
      return;
    }
    const panel = this.tracker.currentWidget;
    const ticket = ++this.chipTicket;
    try {
      const body = await this.requestBody('', panel);
      const preview = await requestAPI<{ chips: IChip[] }>('context', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      if (ticket === this.chipTicket) {
        this.renderChips(preview.chips);
      }
    } catch {
      // the chips are a preview; asking still works
    }
  }

  private renderChips(chips: IChip[]): void {
    this.chips.replaceChildren();
    for (const chip of chips) {
      const element = document.createElement('span');
      element.className = `mm-Chip mm-Chip-${chip.kind} mm-mod-${chip.state}`;
      element.dataset.chipId = chip.id;
      const tip =
        chip.state === 'omitted'
          ? 'does not fit the context budget: not sent'
          : chip.state === 'partial'
            ? 'partly sent (shortened to fit the context budget)'
            : 'sent with the question';
      element.title = `${chip.items.join(', ')} — ${tip}`;
      const label = document.createElement('span');
      label.className = 'mm-Chip-label';
      label.textContent = chip.label;
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'mm-Chip-remove';
      remove.title = `Do not send ${chip.label}`;
      remove.setAttribute('aria-label', `Remove ${chip.label}`);
      remove.textContent = '×';
      remove.addEventListener('click', () => {
        this.excluded.add(chip.id);
        element.remove();
        this.scheduleChips(true);
      });
      element.append(label, remove);
      this.chips.appendChild(element);
    }
    if (this.excluded.size) {
      const reset = document.createElement('button');
      reset.type = 'button';
      reset.className = 'jp-Button jp-mod-minimal mm-Chips-reset';
      reset.textContent = `+${this.excluded.size} removed`;
      reset.title = 'Send the removed context again';
      reset.addEventListener('click', () => {
        this.excluded.clear();
        this.scheduleChips(true);
      });
      this.chips.appendChild(reset);
    }
  }

  // -- helpers ---------------------------------------------------------------------------

  /** Code actions for an answer: into `panel` (the notebook active when the question was
   * asked); for answers restored from history whose notebook is not open, the current one. */
  private codeActions(panel: NotebookPanel | null) {
    const target = () => {
      if (panel && !panel.isDisposed) {
        return panel;
      }
      const current = panel ? null : this.tracker.currentWidget;
      if (current) {
        return current;
      }
      throw new Error(
        panel
          ? 'The notebook this answer was for is closed.'
          : 'Open a notebook to insert the code into.'
      );
    };
    return {
      insertBelow: (code: string) => {
        insertBelow(target(), code);
      },
      replaceActive: (code: string) => replaceActive(target(), code)
    };
  }

  private restore(entries: IHistoryEntry[]): void {
    for (const entry of entries) {
      const panel = entry.notebook
        ? (this.tracker.find(p => p.context.path === entry.notebook) ?? null)
        : null;
      if (entry.role === 'user') {
        const view = new MessageView('user', this.rendermime, null);
        view.text = entry.text;
        view.setChips(entry.chips ?? []);
        this.messages.addWidget(view);
        this.lastNotebook = entry.notebook ?? '';
      } else {
        const owner =
          panel ??
          (this.lastNotebook
            ? (this.tracker.find(p => p.context.path === this.lastNotebook) ??
              null)
            : null);
        const view = new MessageView(
          'assistant',
          this.rendermime,
          this.codeActions(owner)
        );
        view.text = entry.text;
        if (entry.usage) {
          view.setUsage(entry.usage);
        }
        if (entry.error) {
          view.setError(entry.error);
        } else if (entry.stopped) {
          view.setNote('Stopped.');
        }
        this.messages.addWidget(view);
      }
    }
    this.scrollToEnd();
  }

  private showModel(): void {
    const model = this._settings.model || this.config?.model || '';
    this.modelLabel.textContent = model;
    this.modelLabel.title = this.config?.server
      ? `${model} at ${this.config.server}`
      : model;
  }

  private showNotice(text: string): void {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  private setBusy(busy: boolean): void {
    this.stopButton.hidden = !busy;
    this.sendButton.disabled = busy;
    this.toggleClass('mm-mod-busy', busy);
  }

  private scrollToEnd(): void {
    const node = this.messages.node;
    requestAnimationFrame(() => {
      node.scrollTop = node.scrollHeight;
    });
  }

  protected onBeforeDetach(): void {
    this.stop();
  }

  private _settings: IChatSettings = DEFAULT_SETTINGS;
  private config: IServerConfig | null = null;
  private controller: AbortController | null = null;
  private requestId = '';
  private excluded = new Set<string>();
  private variableCache = new WeakMap<
    NotebookPanel,
    { generation: number; items: IVariableItem[] }
  >();
  private generation = 0;
  private chipTimer = 0;
  private chipTicket = 0;
  private lastNotebook = '';
  private readonly modelLabel: HTMLSpanElement;
  private readonly notice: HTMLDivElement;
  private readonly messages: Panel;
  private readonly chips: HTMLDivElement;
  private readonly input: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
}
