/** The Mistral sidebar: conversation, context chips, input with Send / Stop, New chat. */

import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Kernel } from '@jupyterlab/services';
import { addIcon, runIcon, stopIcon } from '@jupyterlab/ui-components';
import { UUID } from '@lumino/coreutils';
import { Panel, Widget } from '@lumino/widgets';

import { cancelChat, requestAPI, streamChat } from './api';
import { mistralIcon } from './icon';
import {
  DEFAULT_IDLE_WAIT_MS,
  describeState,
  IKernelTools,
  IKernelVariables,
  kernelVariables,
  waitText
} from './kernel';
import { ICodeActions, IInsertOutcome, MessageView } from './message';
import {
  CellMetadata,
  insertBelow,
  MAX_SELECTION_CHARS,
  notebookJSON,
  replaceActive,
  selectedText
} from './notebook';
import {
  AgentTask,
  IAgentUndo,
  IStepInFlight,
  markAgentCells,
  RestoredTask
} from './agent';
import { KernelToolCache, registerRunner, relayToolCall } from './tools';
import {
  IAgentProgress,
  ICostCheck,
  IChatRequest,
  IChip,
  IHistoryEntry,
  IServerConfig
} from './types';

export interface IChatSettings {
  model: string;
  temperature: number | null;
  contextBudget: number | null;
  /** Let the model call the notebook's tools (run in its kernel). */
  tools: boolean;
  /** Seconds to wait for a busy or starting kernel to be idle before reading its variables
   * and tools (past it, the question goes without them and the sidebar says so). */
  kernelIdleWait: number;
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
  tools: true,
  kernelIdleWait: DEFAULT_IDLE_WAIT_MS / 1000,
  defaultContext: {
    notebook: true,
    activeCell: true,
    error: true,
    variables: true
  }
};

/** Kernel states after which earlier variables are no longer the kernel's. */
const KERNEL_GONE: ReadonlySet<Kernel.Status> = new Set<Kernel.Status>([
  'starting',
  'restarting',
  'autorestarting',
  'terminating',
  'dead',
  'unknown'
]);
/** Variables states that change when the kernel's status does (read again when it is idle). */
const WAITING_FOR_KERNEL = new Set(['busy', 'starting', 'no-kernel']);
/** How close to the bottom (px) counts as "at the bottom": the view then follows the stream. */
const FOLLOW_SLACK = 24;

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
    // Tools on/off: the Settings Editor's "tools" setting (saved through `saveTools`).
    const toggle = document.createElement('label');
    toggle.className = 'mm-ToolsToggle';
    this.toolsBox = document.createElement('input');
    this.toolsBox.type = 'checkbox';
    this.toolsBox.className = 'mm-ToolsToggle-box';
    this.toolsBox.addEventListener('change', () => {
      this._settings = { ...this._settings, tools: this.toolsBox.checked };
      this.saveTools?.(this.toolsBox.checked);
    });
    toggle.append(this.toolsBox, 'Tools');
    this.toolsToggle = toggle;
    // Ask or Agent (issue #14): in Agent mode Mistral carries the task out on the notebook,
    // each run and edit approved here unless "run without asking" is on for the task.
    this.modeSelect = document.createElement('select');
    this.modeSelect.className = 'mm-Mode jp-mod-styled';
    this.modeSelect.title =
      'Ask: answers questions. Agent: works through the active notebook step by step (you approve every run and edit).';
    for (const [value, label] of [
      ['ask', 'Ask'],
      ['agent', 'Agent']
    ]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this.modeSelect.appendChild(option);
    }
    const auto = document.createElement('label');
    auto.className = 'mm-AutoApprove';
    auto.title =
      'Approve every run and edit of the current task without asking (it turns off for the next task).';
    this.autoApprove = document.createElement('input');
    this.autoApprove.type = 'checkbox';
    this.autoApprove.className = 'mm-AutoApprove-box';
    auto.append(this.autoApprove, 'Run without asking (this task)');
    auto.hidden = true;
    this.modeSelect.addEventListener('change', () => {
      auto.hidden = this.modeSelect.value !== 'agent';
      this.input.placeholder =
        this.modeSelect.value === 'agent' ? AGENT_PLACEHOLDER : ASK_PLACEHOLDER;
    });
    header.append(title, toggle, newChat);
    const agentBar = document.createElement('div');
    agentBar.className = 'mm-AgentSwitches';
    const modeLabel = document.createElement('label');
    modeLabel.className = 'mm-ModeLabel';
    modeLabel.append('Mode ', this.modeSelect);
    agentBar.append(modeLabel, auto);

    this.notice = document.createElement('div');
    this.notice.className = 'mm-Notice';
    this.notice.hidden = true;

    this.messages = new Panel();
    this.messages.addClass('mm-Messages');
    // Follow a streaming answer only while the user is at the bottom; scrolling up stops it.
    // Our own scrolls do not count: their event comes a frame later, when more text may
    // already have made the view look "not at the bottom".
    this.messages.node.addEventListener(
      'scroll',
      () => {
        const node = this.messages.node;
        if (node.scrollTop === this.scrolledTo) {
          return;
        }
        this.follow =
          node.scrollHeight - node.scrollTop - node.clientHeight <=
          FOLLOW_SLACK;
      },
      { passive: true }
    );

    this.chips = document.createElement('div');
    this.chips.className = 'mm-Chips';
    this.chips.setAttribute('aria-label', 'Context that will be sent');

    const form = document.createElement('form');
    form.className = 'mm-Input';
    this.input = document.createElement('textarea');
    this.input.className = 'mm-Input-text jp-mod-styled';
    this.input.rows = 3;
    this.input.placeholder = ASK_PLACEHOLDER;
    this.input.addEventListener('keydown', event => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    // Idle: a filled "Send" in the brand colour. Answering: only a red "Stop" (Send hidden).
    this.sendButton = document.createElement('button');
    this.sendButton.type = 'submit';
    this.sendButton.className = 'mm-Button mm-Send';
    this.sendButton.title = 'Send (Enter)';
    this.sendButton.append(
      runIcon.element({ tag: 'span', className: 'mm-Button-icon' }),
      'Send'
    );
    this.stopButton = document.createElement('button');
    this.stopButton.type = 'button';
    this.stopButton.className = 'mm-Button mm-Stop';
    this.stopButton.title =
      'Stop the answer (the part received so far is kept)';
    this.stopButton.append(
      stopIcon.element({ tag: 'span', className: 'mm-Button-icon' }),
      'Stop'
    );
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
    this.addWidget(new Widget({ node: agentBar }));
    this.addWidget(new Widget({ node: this.notice }));
    this.addWidget(this.messages);
    this.addWidget(new Widget({ node: this.chips }));
    this.addWidget(new Widget({ node: form }));

    tracker.currentChanged.connect(() => {
      this.excluded.clear();
      this.scheduleChips(true);
    });
    tracker.activeCellChanged.connect(() => {
      this.watchSelection();
      this.scheduleChips(false);
    });
    registerRunner('agent', async (call, panel) => {
      const task = this.agentTasks.get(call.request_id);
      if (!task || task.panel !== panel) {
        return {
          status: 'error',
          result: 'Error: this call belongs to no running agent task.'
        };
      }
      return task.run(call);
    });
    tracker.forEach(panel => this.watchKernel(panel));
    tracker.widgetAdded.connect((_, panel) => this.watchKernel(panel));
  }

  set settings(value: IChatSettings) {
    this._settings = value;
    this.showModel();
    this.showTools();
    this.scheduleChips(false);
  }

  /** Load the server's config and this user's history. */
  async start(): Promise<void> {
    try {
      this.config = await requestAPI<IServerConfig>('config');
      this.showModel();
      this.showTools();
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
    const chat = this.chatEpoch;
    await this.clearing; // a New chat must be forgotten on the server before we ask
    const panel = options.panel ?? this.tracker.currentWidget;
    const requestId = UUID.uuid4().replace(/-/g, '');
    let body: IChatRequest;
    let variables: IKernelVariables | null = null;
    let tools: IKernelTools | null = null;
    try {
      [body, variables, tools] = await this.requestBody(
        prompt,
        panel,
        options.errorCell
      );
    } catch (error) {
      console.warn('mistral-magic: context not collected', error);
      body = { prompt, sources: [] };
    }
    if (chat !== this.chatEpoch) {
      return; // New chat was pressed while the context was collected
    }
    body.request_id = requestId;
    const agentMode = this.modeSelect.value === 'agent' && !options.kind;
    if (agentMode) {
      body.mode = 'agent';
    }
    if (options.kind) {
      body.kind = options.kind;
      body.prompt = '';
    }
    const missing = variables ? describeState(variables) : null;
    const toolsNote = this.toolsNote(panel, tools);

    const question = new MessageView('user', this.rendermime, null);
    question.text = prompt;
    this.addMessage(question);
    const answer = new MessageView(
      'assistant',
      this.rendermime,
      this.codeActions(panel)
    );
    answer.streaming = true;
    this.addMessage(answer);
    if (toolsNote && !agentMode) {
      answer.setNote(toolsNote);
    }
    let task: AgentTask | null = null;
    let bar: AgentBar | null = null;
    let currentId = requestId; // a confirmed question goes again under a new id
    if (agentMode && panel) {
      this.autoApprove.checked = false; // "run without asking" is for one task only
      task = new AgentTask(panel, requestId, {
        attach: node => answer.attach(node),
        autoApprove: this.autoApprove,
        note: text => bar?.note(text),
        changed: () => bar?.refresh()
      });
      this.agentTasks.set(requestId, task);
      bar = new AgentBar(task);
      answer.node.appendChild(bar.node);
      // the notebook closed or its kernel restarted mid-task: the task stops, saying why
      const closed = () => {
        if (this.requestId === currentId) {
          this.stop(CLOSED_NOTE);
        }
      };
      const restarted = (_: unknown, status: string) => {
        if (
          (status === 'restarting' || status === 'autorestarting') &&
          this.requestId === currentId
        ) {
          this.stop(RESTARTED_NOTE);
        }
      };
      panel.disposed.connect(closed);
      panel.sessionContext.statusChanged.connect(restarted);
      task.ended = () => {
        panel.disposed.disconnect(closed);
        if (!panel.sessionContext.isDisposed) {
          panel.sessionContext.statusChanged.disconnect(restarted);
        }
      };
    }
    this.scrollToEnd(true);

    // The cost guard may want a confirmation first (nothing was sent then): the answer
    // asks, and Send asks again, confirmed, into the same answer (an agent task goes on
    // under the new request's id: its tool calls are looked up by it).
    const finishTask = () => {
      if (task) {
        task.stop();
        task.ended();
        task.mark();
        this.agentTasks.delete(currentId);
        bar?.finished();
      }
    };
    const run = async (request: IChatRequest): Promise<void> => {
      const controller = new AbortController();
      this.controller = controller;
      this.requestId = request.request_id ?? '';
      this.setBusy(true);
      let failed = false;
      let check: ICostCheck | null = null;
      try {
        await streamChat(
          request,
          {
            context: data => {
              const sent = data.chips
                .filter(c => c.state !== 'omitted')
                .map(c => (c.note ? `${c.label} (${c.note})` : c.label));
              question.setChips(missing ? [...sent, missing.label] : sent);
              if (task) {
                task.model = data.model;
                task.question = data.question ?? '';
              }
              this.renderChips(data.chips, variables);
              if (data.note) {
                answer.setNote(data.note);
              }
            },
            delta: text => answer.append(text),
            thinking: text => answer.appendThinking(text),
            notice: data => answer.setNote(data.message),
            usage: usage => answer.setUsage(usage),
            provenance: record => {
              answer.setProvenance(record);
              task?.complete(record);
            },
            confirm: data => {
              check = data;
            },
            error: data => {
              failed = true;
              answer.setError(data.message);
            },
            // run where the notebook is (tools.ts), shown as a line until its result comes
            toolCall: call => {
              answer.showTool({ ...call, status: 'running', result: '' });
              void relayToolCall(call, panel);
            },
            toolResult: result => answer.showTool(result),
            agent: progress => bar?.progress(progress)
          },
          controller.signal
        );
      } catch (error) {
        if ((error as Error).name === 'AbortError') {
          answer.setNote(this.stopNotes.get(currentId) ?? 'Stopped.');
        } else if (!failed) {
          answer.setError(String((error as Error).message ?? error));
        }
      } finally {
        answer.streaming = false;
        this.stopNotes.delete(currentId);
        if (this.controller === controller) {
          this.controller = null;
          this.requestId = '';
          this.setBusy(false);
        }
      }
      const asked: ICostCheck | null = check;
      if (!asked) {
        finishTask();
        return;
      }
      answer.setNote('Not sent yet: this question needs your confirmation.');
      bar?.say(AGENT_HELD);
      answer.askToConfirm(
        asked,
        () => {
          if (chat !== this.chatEpoch || task?.stopped) {
            finishTask();
            return;
          }
          answer.setNote('');
          bar?.say(AGENT_STARTED);
          answer.streaming = true;
          const next = UUID.uuid4().replace(/-/g, '');
          if (task) {
            this.agentTasks.delete(currentId);
            this.agentTasks.set(next, task);
          }
          currentId = next;
          void run({ ...request, confirmed: true, request_id: next });
        },
        () => {
          answer.setNote('Not sent.');
          bar?.say(AGENT_NOT_SENT);
          finishTask();
        }
      );
    };
    await run(body);
  }

  /** Stop the running answer: abort the stream and tell the server to cancel upstream
   * (`note`: why, shown on the answer instead of "Stopped."). A cell an agent task is
   * running keeps running: its task then offers to interrupt it. */
  stop(note?: string): void {
    for (const task of this.agentTasks.values()) {
      task.stop(); // cards waiting for a click are rejected (and nothing posted for them)
    }
    if (this.controller) {
      const requestId = this.requestId;
      if (note && requestId) {
        this.stopNotes.set(requestId, note);
      }
      this.controller.abort();
      if (requestId) {
        void cancelChat(requestId);
      }
    }
  }

  /** Forget the chat: the running answer stops, and the server forgets the history and
   * that answer in one request (it can no longer write its exchange back). Questions asked
   * from now on wait until the server has forgotten. */
  async newChat(): Promise<void> {
    this.chatEpoch += 1;
    this.controller?.abort();
    this.controller = null;
    this.requestId = '';
    this.setBusy(false);
    for (const widget of [...this.messages.widgets]) {
      widget.dispose();
    }
    this.excluded.clear();
    const clearing = requestAPI('history', { method: 'DELETE' }).then(
      () => undefined,
      error => this.showNotice(String((error as Error).message ?? error))
    );
    this.clearing = clearing;
    await clearing;
    if (this.clearing === clearing) {
      this.clearing = Promise.resolve();
    }
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

  /** The request for `prompt`, and what was found of the kernel's variables and tools
   * (null: not asked for). The chips' preview carries the tools too: with tools, less
   * context goes up front (Mistral.tools_context_budget), and the chips must say so. */
  private async requestBody(
    prompt: string,
    panel: NotebookPanel | null,
    errorCell?: number
  ): Promise<[IChatRequest, IKernelVariables | null, IKernelTools | null]> {
    const s = this._settings;
    const body: IChatRequest = {
      prompt,
      sources: this.sources(),
      exclude: [...this.excluded],
      model: s.model || null,
      temperature: s.temperature,
      context_budget: s.contextBudget
    };
    let variables: IKernelVariables | null = null;
    if (panel) {
      const active = errorCell ?? panel.content.activeCellIndex;
      // A question takes the figures it may be about along (the server sends them to a
      // model that can see); the chips' preview (no prompt) takes none.
      body.notebook = notebookJSON(panel, prompt ? { active, prompt } : null);
      body.notebook_path = panel.context.path;
      body.active_cell = active;
      const selection = errorCell === undefined ? selectedText(panel) : '';
      // the server sends at most 4,000 characters of it: the rest need not travel
      body.selection = selection.slice(0, MAX_SELECTION_CHARS);
      body.selection_chars = selection.length;
      if (errorCell !== undefined) {
        body.error_cell = errorCell;
        body.exclude = body.exclude?.filter(id => id !== 'error');
      }
      if (body.sources.includes('vars')) {
        variables = await this.variables(panel);
        body.variables = variables.items;
      }
    }
    const tools = await this.kernelTools(body, panel);
    return [body, variables, tools];
  }

  /** How long a busy or starting kernel is waited for before its variables and tools are
   * read (the `kernelIdleWait` setting, in seconds). */
  private get idleWaitMs(): number {
    return this._settings.kernelIdleWait * 1000;
  }

  /** Whether the model may call tools: the user's toggle, unless the server says no. */
  private get toolsOn(): boolean {
    return this._settings.tools && this.config?.tools !== false;
  }

  /** The notebook kernel's tools into `body` (when tools are on); what was found, or null
   * when tools are off. */
  private async kernelTools(
    body: IChatRequest,
    panel: NotebookPanel | null
  ): Promise<IKernelTools | null> {
    if (!this.toolsOn) {
      return null;
    }
    if (!panel) {
      return { state: 'no-kernel', tools: [] };
    }
    const found = await this.toolCache.tools(panel, this.idleWaitMs);
    if (found.state === 'ok' && found.tools.length) {
      body.tools = found.tools;
    }
    return found;
  }

  /** Why this answer has no tools, said once per notebook and reason ('' otherwise). */
  private toolsNote(
    panel: NotebookPanel | null,
    found: IKernelTools | null
  ): string {
    if (!found || found.state === 'ok') {
      return '';
    }
    const key = panel ?? this;
    const told = this.toldNoTools.get(key) ?? new Set<string>();
    this.toldNoTools.set(key, told);
    if (told.has(found.state)) {
      return '';
    }
    told.add(found.state);
    const why: Record<string, string> = {
      'no-kernel': panel
        ? 'the notebook has no running kernel'
        : 'no notebook is open',
      starting: 'the kernel is starting',
      busy: `the kernel stayed busy (a cell running) for ${waitText(found.waitedMs ?? this.idleWaitMs)}, so it did not list its tools`,
      'other-language': `tools run in Python kernels only (this one is ${found.language || 'another language'})`,
      'no-mistral-magic':
        'mistral_magic cannot be imported in this kernel (install mistral-magic in its environment)',
      'no-answer': 'the kernel did not list its tools in time'
    };
    return `Answered without tools: ${why[found.state] ?? found.state}.`;
  }

  private showTools(): void {
    const off = this.config?.tools === false;
    this.toolsBox.checked = this._settings.tools && !off;
    this.toolsBox.disabled = off;
    this.toolsToggle.title = off
      ? 'Tools are turned off on the Jupyter server (c.MistralServer.tools).'
      : 'Let Mistral call the notebook’s tools (read-only notebook tools and your @tool functions), run in the notebook’s kernel.';
  }

  /** The kernel's variables, read again after anything ran or the kernel changed. A kernel
   * that is busy, starting or gone gives none, with the reason. */
  private async variables(panel: NotebookPanel): Promise<IKernelVariables> {
    const cached = this.variableCache.get(panel);
    if (cached && cached.generation === this.generation) {
      return cached.result;
    }
    const generation = this.generation;
    const kernelEpoch = this.kernelEpochs.get(panel) ?? 0;
    const result = await kernelVariables(panel, this.idleWaitMs);
    // not kept if it may describe a kernel that has since restarted or gone
    const sameKernel = kernelEpoch === (this.kernelEpochs.get(panel) ?? 0);
    if (sameKernel && !WAITING_FOR_KERNEL.has(result.state)) {
      this.variableCache.set(panel, { generation, result });
    }
    return result;
  }

  /** Something ran in a notebook: its variables may have changed. */
  invalidateVariables(): void {
    this.generation += 1;
    this.toolCache.forget(); // a cell may have registered an @tool function
    this.scheduleChips(false);
  }

  /** A selection in the active cell is a chip of its own: follow its changes. */
  private watchSelection(): void {
    this.unwatchSelection();
    this.unwatchSelection = () => undefined;
    const cell = this.tracker.activeCell;
    if (!cell) {
      return;
    }
    void cell.ready.then(() => {
      const editor = cell.editor;
      if (cell !== this.tracker.activeCell || !editor) {
        return;
      }
      const selections = editor.model.selections;
      const changed = () => this.scheduleChips(false);
      selections.changed.connect(changed);
      this.unwatchSelection = () => selections.changed.disconnect(changed);
    });
  }

  /** Chips follow the kernel: a restart, shutdown or new kernel drops what was read from the
   * old one; a kernel that was busy or starting is read again once idle. */
  private watchKernel(panel: NotebookPanel): void {
    // cells an agent task made or changed keep their badge when the notebook reopens
    void panel.context.ready.then(
      () => markAgentCells(panel),
      () => undefined
    );
    const context = panel.sessionContext;
    const forget = () => {
      this.variableCache.delete(panel);
      this.toolCache.forget(); // a new or restarted kernel lists its tools again
      this.kernelEpochs.set(panel, (this.kernelEpochs.get(panel) ?? 0) + 1);
      if (panel === this.tracker.currentWidget) {
        this.scheduleChips(false);
      }
    };
    context.kernelChanged.connect(forget);
    context.statusChanged.connect((_, status) => {
      if (KERNEL_GONE.has(status)) {
        forget();
      } else if (
        status === 'idle' &&
        panel === this.tracker.currentWidget &&
        WAITING_FOR_KERNEL.has(this.shownVariablesState)
      ) {
        this.scheduleChips(false);
      }
    });
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
      const [body, variables] = await this.requestBody('', panel);
      const preview = await requestAPI<{ chips: IChip[] }>('context', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      if (ticket === this.chipTicket) {
        this.renderChips(preview.chips, variables);
      }
    } catch {
      // the chips are a preview; asking still works
    }
  }

  private renderChips(
    chips: IChip[],
    variables: IKernelVariables | null
  ): void {
    this.chips.replaceChildren();
    this.shownVariablesState = variables?.state ?? 'ok';
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
      if (chip.note) {
        const note = document.createElement('span');
        note.className = 'mm-Chip-note';
        note.textContent = ` · ${chip.note}`;
        label.appendChild(note);
        element.title += ` (${chip.note} are sent)`;
      }
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
    const missing = variables ? describeState(variables) : null;
    if (missing) {
      const element = document.createElement('span');
      element.className = 'mm-Chip mm-Chip-status mm-mod-unavailable';
      element.dataset.chipId = 'kernel';
      element.title = missing.title;
      const label = document.createElement('span');
      label.className = 'mm-Chip-label';
      label.textContent = missing.label;
      element.append(label);
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
   * asked); for answers restored from history whose notebook is not open, the current one.
   * Each says where the code went, and offers the notebook in view when that is another. */
  private codeActions(panel: NotebookPanel | null): ICodeActions {
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
    const inserted = (
      into: NotebookPanel,
      code: string,
      metadata?: CellMetadata
    ): IInsertOutcome => {
      const index = insertBelow(into, code, metadata);
      return this.outcome(into, `Inserted as cell ${index + 1}`, {
        label: 'Insert here',
        run: other => inserted(other, code, metadata)
      });
    };
    const replaced = (
      into: NotebookPanel,
      code: string,
      metadata?: CellMetadata
    ): IInsertOutcome => {
      const index = replaceActive(into, code, metadata);
      return this.outcome(into, `Replaced cell ${index + 1}`, {
        label: 'Replace here',
        run: other => replaced(other, code, metadata)
      });
    };
    return {
      insertBelow: (code: string, metadata?: CellMetadata) =>
        inserted(target(), code, metadata),
      replaceActive: (code: string, metadata?: CellMetadata) =>
        replaced(target(), code, metadata)
    };
  }

  /** "Inserted as cell 3 (not run)." when `into` is the notebook in view; otherwise the
   * notebook's name, and `here` offered for the notebook in view. */
  private outcome(
    into: NotebookPanel,
    done: string,
    here: { label: string; run: (other: NotebookPanel) => IInsertOutcome }
  ): IInsertOutcome {
    const current = this.tracker.currentWidget;
    if (into === current && into.isVisible) {
      return { note: `${done} (not run).` };
    }
    const name = PathExt.basename(into.context.path);
    const outcome: IInsertOutcome = {
      note: `${done} of ${name}, the notebook this answer is about (not run; it is not in view).`
    };
    if (current && current !== into && current.isVisible) {
      outcome.here = {
        label: `${here.label} (${PathExt.basename(current.context.path)})`,
        run: () => here.run(current)
      };
    }
    return outcome;
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
        this.addMessage(view);
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
        if (entry.thinking) {
          view.appendThinking(entry.thinking);
        }
        for (const call of entry.tools ?? []) {
          view.showTool(call);
        }
        if (entry.usage) {
          view.setUsage(entry.usage);
        }
        view.setProvenance(entry.provenance);
        // an agent task from before the reload: its totals, and its Undo while the tab
        // keeps its checkpoint (found by path when clicked: notebooks reopen later)
        const task = entry.agent?.request_id
          ? new RestoredTask(
              entry.agent.request_id,
              path => this.tracker.find(p => p.context.path === path) ?? null
            )
          : null;
        if (entry.error) {
          view.setError(entry.error);
        } else if (entry.stopped) {
          // a step was in flight when the page went away: the server stopped the task there
          view.setNote(
            task?.inFlight ? reloadedNote(task.inFlight) : 'Stopped.'
          );
        }
        if (task && entry.agent) {
          const bar = new AgentBar(task);
          bar.progress(entry.agent);
          bar.finished();
          view.node.appendChild(bar.node);
        }
        this.addMessage(view);
      }
    }
    this.scrollToEnd(true);
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
    this.sendButton.hidden = busy;
    this.sendButton.disabled = busy;
    this.toggleClass('mm-mod-busy', busy);
  }

  /** Messages grow as they render (text, notes, the footer): while the user is at the
   * bottom, the view follows every growth. */
  private addMessage(view: MessageView): void {
    this.messages.addWidget(view);
    this.growth.observe(view.node);
    view.disposed.connect(() => this.growth.unobserve(view.node));
  }

  /** Keep the newest text in view, unless the user scrolled up to read (`force`: a new
   * question, which always brings the view down). */
  private scrollToEnd(force = false): void {
    if (force) {
      this.follow = true;
    }
    if (this.scrollFrame) {
      return;
    }
    this.scrollFrame = requestAnimationFrame(() => {
      this.scrollFrame = 0;
      if (this.follow) {
        const node = this.messages.node;
        node.scrollTop = node.scrollHeight;
        this.scrolledTo = node.scrollTop;
      }
    });
  }

  protected onBeforeDetach(): void {
    this.stop();
  }

  /** Saves the Tools toggle as the "tools" setting (set by the plugin). */
  saveTools: ((on: boolean) => void) | null = null;

  private _settings: IChatSettings = DEFAULT_SETTINGS;
  private readonly toolCache = new KernelToolCache();
  private readonly toldNoTools = new WeakMap<object, Set<string>>();
  private readonly toolsBox: HTMLInputElement;
  private readonly modeSelect: HTMLSelectElement;
  private readonly autoApprove: HTMLInputElement;
  private readonly agentTasks = new Map<string, AgentTask>();
  private readonly stopNotes = new Map<string, string>();
  private readonly toolsToggle: HTMLLabelElement;
  private config: IServerConfig | null = null;
  private controller: AbortController | null = null;
  private requestId = '';
  private excluded = new Set<string>();
  private variableCache = new WeakMap<
    NotebookPanel,
    { generation: number; result: IKernelVariables }
  >();
  private kernelEpochs = new WeakMap<NotebookPanel, number>();
  private shownVariablesState = 'ok';
  private generation = 0;
  private chatEpoch = 0;
  private clearing: Promise<void> = Promise.resolve();
  private follow = true;
  private scrolledTo = -1;
  private readonly growth = new ResizeObserver(() => this.scrollToEnd());
  private unwatchSelection: () => void = () => undefined;
  private scrollFrame = 0;
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

const ASK_PLACEHOLDER =
  'Ask Mistral about this notebook… (Enter to send, Shift+Enter for a new line)';
const CLOSED_NOTE =
  'Stopped: the notebook of this task was closed. Nothing was written to any other notebook.';
const RESTARTED_NOTE =
  'Stopped: the notebook’s kernel restarted, so the variables the task relied on are gone. Its changes so far can still be undone.';
/** The line of a task that was in the middle of a step when the page was reloaded (the
 * page drives the task: the server ends it when the page leaves; the kernel is not
 * interrupted, so a cell it ran goes on, unseen by the task). */
function reloadedNote({ step, phase, cell }: IStepInFlight): string {
  const reloaded = 'Stopped: the page was reloaded while';
  switch (phase) {
    case 'kernel':
      return `${reloaded} ${step} waited for the kernel; it was not run.`;
    case 'running':
      return `${reloaded} cell ${cell} ran; it goes on running in the kernel, but the task did not see its result.`;
    default:
      return `${reloaded} this step (${step}) waited for your approval; nothing of it was run.`;
  }
}
const AGENT_PLACEHOLDER =
  'Give Mistral a task on this notebook, e.g. "load sales.csv and plot revenue per month"';

/** An agent task's line before its first step: sent, held back by the cost guard
 * (Mistral.confirm_above) until the user confirms, or never sent. */
const AGENT_STARTED = 'Agent task started.';
const AGENT_HELD = 'Agent task not started: it waits for your confirmation.';
const AGENT_NOT_SENT = 'Agent task not started: nothing was sent.';

/** An agent task's line under its answer: steps, tokens, cost; then "Undo agent changes". */
class AgentBar {
  constructor(private readonly task: IAgentUndo) {
    this.node = document.createElement('div');
    this.node.className = 'mm-AgentBar';
    this.status = document.createElement('span');
    this.status.className = 'mm-AgentBar-status';
    this.status.textContent = AGENT_STARTED;
    this.undo = document.createElement('button');
    this.undo.type = 'button';
    this.undo.className = 'jp-Button mm-Undo';
    this.undo.textContent = 'Undo agent changes';
    this.undo.title =
      'Put back every cell this task changed (sources, outputs, metadata) and remove the cells it added';
    this.undo.hidden = true;
    this.undo.addEventListener('click', () => {
      const why = this.task.undo();
      if (why) {
        this.note(why);
        return;
      }
      this.note(null);
      this.undo.disabled = true;
      this.undo.textContent = 'Agent changes undone';
    });
    // Stop leaves a running cell alone; interrupting it is a separate, explicit choice.
    this.interrupt = document.createElement('button');
    this.interrupt.type = 'button';
    this.interrupt.className = 'jp-Button mm-Interrupt';
    this.interrupt.textContent = 'Interrupt the running cell';
    this.interrupt.title =
      'The task stopped, but the cell it ran is still running in the kernel: interrupt it';
    this.interrupt.hidden = true;
    this.interrupt.addEventListener('click', () => {
      this.task.interrupt();
      this.interrupt.disabled = true;
      this.interrupt.textContent = 'Interrupt sent';
    });
    this.waitNote = document.createElement('div');
    this.waitNote.className = 'mm-AgentBar-note';
    this.waitNote.hidden = true;
    this.node.append(this.status, this.interrupt, this.undo, this.waitNote);
  }

  /** The task's state before its first step (the cost guard may hold it back). */
  say(status: string): void {
    this.status.textContent = status;
  }

  /** What the task waits for (the kernel), or nothing. */
  note(text: string | null): void {
    this.waitNote.textContent = text ?? '';
    this.waitNote.hidden = !text;
  }

  /** The task stopped, or its cell started or ended running. */
  refresh(): void {
    const offer = this.task.stopped && this.task.executing;
    if (offer && this.interrupt.hidden) {
      this.interrupt.disabled = false;
      this.interrupt.textContent = 'Interrupt the running cell';
    }
    this.interrupt.hidden = !offer;
  }

  progress(p: IAgentProgress): void {
    const tokens = (p.prompt_tokens + p.completion_tokens).toLocaleString();
    this.status.textContent =
      `Step ${p.step} of at most ${p.max_steps} · ${tokens} tokens · ` +
      `${p.cost_text} (bound ${p.max_cost_text})`;
    this.undo.hidden = !this.task.changed;
  }

  finished(): void {
    this.undo.hidden = !this.task.changed;
    this.refresh();
    this.node.classList.add('mm-mod-finished');
  }

  readonly node: HTMLDivElement;
  private readonly interrupt: HTMLButtonElement;
  private readonly waitNote: HTMLDivElement;
  private readonly status: HTMLSpanElement;
  private readonly undo: HTMLButtonElement;
}
