/**
 * Agent mode's browser side (issue #14): the `agent` runner of the relayed tool calls
 * (tools.ts), acting on the notebook model of the task's notebook; the approval cards
 * before a run, an edit or a delete; the checkpoint and "Undo agent changes".
 *
 * The tools' definitions and the agent's prompt are the server's (mistral_magic/tools/
 * agent.py, engine/prompts.py); this file only carries calls out. Model text (sources,
 * arguments) is shown as text nodes, never as HTML.
 */

import { CodeCell } from '@jupyterlab/cells';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';

import { IToolOutcome } from './kernel';
import { agentRecord, codeHash, completedAgentRecord } from './provenance';
import { IToolCall } from './types';

/** What the server reads of a cell's outputs: each text cut to this (it summarises further). */
const OUTPUT_CHARS = 4000;
const SOURCE_LINES_SHOWN = 400;
export const REJECTED = 'rejected by the user';

type Decision = 'approve' | 'reject';

/** An approval card: `step` names what it asks for ("Run cell 1"). */
interface ICard {
  node: HTMLElement;
  body: HTMLElement;
  buttons: HTMLElement;
  step: string;
}

type ISharedCell = INotebookModel['sharedModel']['cells'][number];

/** A cell as it was before the task first touched it (nbformat JSON, its id included). */
interface ISaved {
  json: any;
  /** Its index then, and the id of the cell before it (to put a deleted cell back). */
  index: number;
  after: string | null;
}

/** What a task's line under its answer (chat.ts's AgentBar) asks of the task: a running
 * one, or one restored after a page reload. */
export interface IAgentUndo {
  readonly changed: boolean;
  readonly stopped: boolean;
  readonly executing: boolean;
  /** Undo the task's changes; null when done, else why not (shown on the task). */
  undo(): string | null;
  interrupt(): void;
}

/** What Undo needs of a task after a page reload. */
export interface ICheckpoint {
  /** The notebook's path when the task ran. */
  path: string;
  saved: ISaved[];
  added: string[];
  /** The step the task is in the middle of, while it is: the page drives the task, so a
   * reload then ends the task there, and the restored transcript says where. */
  inFlight?: IStepInFlight;
}

/** Where a step of a task is between its card and its result: its card waits for the
 * user's approval, its approved run waits for a busy kernel, or its cell runs (a reload
 * does not interrupt the kernel: the cell goes on, but its result never reaches the task). */
export interface IStepInFlight {
  /** The step as its card names it ("Run cell 1"). */
  step: string;
  phase: 'approval' | 'kernel' | 'running';
  /** The cell running, by its index when it started (phase 'running'). */
  cell?: number;
}

export interface IAgentView {
  /** Show a card (approval or note) with the answer. */
  attach(node: HTMLElement): void;
  /** The "run without asking" switch of this task. */
  readonly autoApprove: HTMLInputElement;
  /** A line on the task saying what it waits for (null: nothing). */
  note(text: string | null): void;
  /** The task stopped, or one of its cells started or ended running. */
  changed(): void;
}

/** One agent task on one notebook: its approvals, its checkpoint, its undo. */
export class AgentTask implements IAgentUndo {
  constructor(
    readonly panel: NotebookPanel,
    readonly task: string,
    private readonly view: IAgentView
  ) {}

  model = '';
  /** The task as provenance records it (the server's redacted, short copy). */
  question = '';
  steps = 0;
  /** Called once when the task's stream ends (set by the sidebar). */
  ended: () => void = () => undefined;
  stopped = false;

  /** Cells changed by the task, as they were before (by cell id), and the cells it added. */
  readonly saved = new Map<string, ISaved>();
  readonly added = new Set<string>();

  /** The step between its card and its result (kept with the checkpoint). */
  private inFlight: IStepInFlight | null = null;

  /** A cell this task asked the kernel to run is running now, in a notebook still open
   * (Stop leaves it running; `interrupt` is the user's choice). */
  get executing(): boolean {
    return this.running && !this.panel.isDisposed;
  }
  private running = false;

  get changed(): boolean {
    return (
      !this.panel.isDisposed && (this.saved.size > 0 || this.added.size > 0)
    );
  }

  /** Stop: every card still waiting is rejected, every wait (for the kernel) ends. A cell
   * already running keeps running. */
  stop(): void {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    for (const end of this.waiting) {
      end();
    }
    this.waiting.clear();
    // no step is the task's any more (a cell left running is the user's now); when the
    // page is leaving, persist() keeps the checkpoint as it was: where the reload hit
    if (this.inFlight) {
      this.setInFlight(null);
    }
    this.view.note(null);
    this.view.changed();
  }

  /** Interrupt the kernel running this task's cell (only ever on the user's click). */
  interrupt(): void {
    const kernel = this.panel.isDisposed
      ? null
      : this.panel.sessionContext.session?.kernel;
    if (this.running && kernel) {
      void kernel.interrupt();
    }
  }

  /** The `agent` runner: one step. A step that ends after the task stopped (a card the
   * stop rejected, a wait for the kernel it ended, a cell left running) is marked so that
   * nothing is posted for it: a stopped task asks the model nothing more. */
  async run(call: IToolCall): Promise<IToolOutcome> {
    const outcome = await this.step(call);
    return this.stopped ? { ...outcome, taskStopped: true } : outcome;
  }

  private async step(call: IToolCall): Promise<IToolOutcome> {
    if (this.panel.isDisposed) {
      return error('the notebook of this task is closed; nothing was done.');
    }
    if (this.stopped) {
      return { status: 'declined', result: 'The user stopped the task.' };
    }
    this.steps += 1;
    const args = call.arguments as Record<string, any>;
    const cells = this.shared.cells;
    const index = Number(args.index);
    const needsCell = call.name !== 'list_cells' && call.name !== 'insert_cell';
    if (needsCell && !(index >= 0 && index < cells.length)) {
      return error(
        `there is no cell ${args.index}: the notebook has ${cells.length} cells (0 to ${cells.length - 1}).`
      );
    }
    switch (call.name) {
      case 'list_cells':
        return ok(this.listCells());
      case 'get_cell': {
        const cell = cells[index];
        const count =
          cell.cell_type === 'code' ? (cell as any).execution_count : null;
        return ok(
          `Cell ${index} (${cell.cell_type}${count ? `, In[${count}]` : ''}):\n${cell.getSource()}`
        );
      }
      case 'insert_cell':
        return this.insert(index, String(args.source ?? ''), args.cell_type);
      case 'edit_cell':
        return this.edit(index, String(args.source ?? ''), call);
      case 'run_cell':
        return this.runCell(index, call);
      case 'get_cell_output':
        return ok(JSON.stringify(this.report(index, 'ok')));
      case 'delete_cell':
        return this.remove(index, call);
      default:
        return error(`the agent has no tool ${call.name}.`);
    }
  }

  // -- the tools ---------------------------------------------------------------------------

  private listCells(): string {
    const lines = this.shared.cells.map((cell, i) => {
      const first = cell.getSource().split('\n', 1)[0].slice(0, 80);
      const count =
        cell.cell_type === 'code' ? (cell as any).execution_count : null;
      const failed =
        cell.cell_type === 'code' &&
        ((cell as any).outputs ?? []).some(
          (o: any) => o.output_type === 'error'
        );
      return `${i}: ${cell.cell_type}${count ? ` In[${count}]` : ''}${failed ? ' (error)' : ''} | ${first}`;
    });
    return lines.length ? lines.join('\n') : '(the notebook has no cells)';
  }

  private async insert(
    index: number,
    source: string,
    type: unknown
  ): Promise<IToolOutcome> {
    const cellType = type === 'markdown' ? 'markdown' : 'code';
    const hash = await codeHash(source);
    const cells = this.shared.cells; // as it is now, after the hash's await
    if (!(index >= 0 && index <= cells.length)) {
      return error(
        `index ${index} is outside 0 to ${cells.length} (the number of cells appends).`
      );
    }
    const cell = this.shared.insertCell(index, {
      cell_type: cellType,
      source,
      metadata: { mistral: this.provenance(hash) }
    } as any);
    this.added.add(cell.id);
    this.persist();
    this.mark();
    return ok(`Inserted a ${cellType} cell at index ${index} (not run).`);
  }

  private async edit(
    index: number,
    source: string,
    call: IToolCall
  ): Promise<IToolOutcome> {
    const cell = this.shared.cells[index];
    const card = this.card(`Edit cell ${index}`, call);
    card.body.appendChild(diffView(cell.getSource(), source));
    if ((await this.decide(card, call)) === 'reject') {
      return { status: 'declined', result: REJECTED };
    }
    const now = this.shared.cells.indexOf(cell);
    if (now < 0) {
      return error('the cell was deleted while waiting for approval.');
    }
    const hash = await codeHash(source);
    const at = this.shared.cells.indexOf(cell);
    if (at < 0) {
      return error('the cell was deleted while waiting for approval.');
    }
    this.save(cell, at);
    cell.setSource(source);
    this.stamp(cell, hash);
    return ok(`Cell ${at} now has the new source (not run).`);
  }

  private async runCell(index: number, call: IToolCall): Promise<IToolOutcome> {
    const cell = this.shared.cells[index];
    if (cell.cell_type !== 'code') {
      return error(
        `cell ${index} is a ${cell.cell_type} cell: only code cells run.`
      );
    }
    const card = this.card(`Run cell ${index}`, call);
    const code = document.createElement('pre');
    code.className = 'mm-Approval-code';
    code.textContent = clipLines(cell.getSource());
    card.body.appendChild(code);
    if ((await this.decide(card, call)) === 'reject') {
      return { status: 'declined', result: REJECTED };
    }
    const now = this.shared.cells.indexOf(cell);
    const widget = this.panel.content.widgets[now];
    if (now < 0 || !(widget instanceof CodeCell)) {
      return error('the cell was deleted while waiting for approval.');
    }
    const session = this.panel.sessionContext;
    if (!session.session?.kernel) {
      return error('the notebook has no running kernel; the cell was not run.');
    }
    const step = `Run cell ${index}`;
    this.setInFlight({ step, phase: 'kernel' });
    const idle = await this.kernelIdle(call.timeout_ms);
    this.setInFlight(null);
    if (idle === 'stopped') {
      return { status: 'declined', result: 'The user stopped the task.' };
    }
    if (idle === 'gone') {
      return error(
        `the notebook's kernel stopped while cell ${now} waited for it; the cell was not run.`
      );
    }
    if (idle === 'timeout') {
      return error(
        `the kernel stayed busy with another cell for the task's time left (MistralServer.agent_max_seconds); cell ${now} was not run.`
      );
    }
    // the wait may have moved the cell (the user edits the notebook meanwhile)
    const at = this.shared.cells.indexOf(cell);
    const target = this.panel.content.widgets[at];
    if (at < 0 || !(target instanceof CodeCell)) {
      return error('the cell was deleted while waiting for the kernel.');
    }
    this.save(cell, at);
    if (cell.getMetadata('mistral') === undefined) {
      // ran, not written, by the task: the badge, but no code hash (the audit does not
      // count the user's code as the model's); a cell with provenance keeps its own
      this.stamp(cell, '');
    }
    let restarted = false;
    const watch = (_: unknown, status: string) => {
      if (status === 'restarting' || status === 'autorestarting') {
        restarted = true;
      }
    };
    session.statusChanged.connect(watch);
    let status: 'ok' | 'error' = 'ok';
    const execution = CodeCell.execute(target, session);
    this.setInFlight({ step, phase: 'running', cell: at });
    this.running = true;
    this.view.changed();
    // the flag follows the cell's own run, also after the task stopped waiting for it
    void execution
      .catch(() => undefined)
      .then(() => {
        this.running = false;
        this.view.changed();
      });
    try {
      // Bounded by the task's time left: a cell that keeps running is not interrupted
      // (the user decides that), the model hears it did not finish.
      const reply = await within(execution, call.timeout_ms);
      if (reply === TIMED_OUT) {
        return error(
          `cell ${at} did not finish within the task's time left; it may still be running.`
        );
      }
      status = reply?.content.status === 'ok' ? 'ok' : 'error';
    } catch (err) {
      // a kernel shut down under the run cancels it: say that, not the cancelled future
      return error(
        this.kernelGone()
          ? `the notebook's kernel stopped before cell ${at} finished.`
          : `running cell ${at} failed: ${String((err as Error).message ?? err)}`
      );
    } finally {
      session.statusChanged.disconnect(watch);
      this.setInFlight(null);
    }
    if (restarted) {
      this.stop();
      return error('the kernel restarted while the cell ran; the task stops.');
    }
    return ok(JSON.stringify(this.report(at, status)));
  }

  /** Wait until the notebook's kernel is idle (a cell the user started, or a silent
   * request, may hold it), at most `ms`, saying so on the task while it waits. */
  private async kernelIdle(
    ms: number
  ): Promise<'idle' | 'timeout' | 'stopped' | 'gone'> {
    const session = this.panel.sessionContext;
    const state = () =>
      this.kernelGone()
        ? 'gone'
        : session.session?.kernel?.status === 'idle'
          ? 'idle'
          : null;
    const now = state();
    if (now) {
      return now;
    }
    this.view.note(
      'Waiting for the kernel… (it is busy with another cell or starting; the approved cell runs as soon as it is idle)'
    );
    let timer = 0;
    let watch: () => void = () => undefined;
    let end: () => void = () => undefined;
    try {
      return await new Promise(resolve => {
        end = () => resolve('stopped');
        this.waiting.add(end);
        watch = () => {
          const reached = state();
          if (reached) {
            resolve(reached);
          }
        };
        session.statusChanged.connect(watch);
        session.kernelChanged.connect(watch);
        timer = window.setTimeout(() => resolve('timeout'), Math.max(ms, 0));
      });
    } finally {
      window.clearTimeout(timer);
      this.waiting.delete(end);
      if (!session.isDisposed) {
        session.statusChanged.disconnect(watch);
        session.kernelChanged.disconnect(watch);
      }
      this.view.note(null);
    }
  }

  /** The notebook has no kernel any more (shut down, dead, or the notebook closed). */
  private kernelGone(): boolean {
    const session = this.panel.sessionContext;
    const kernel = session.isDisposed ? null : session.session?.kernel;
    return !kernel || kernel.isDisposed || kernel.status === 'dead';
  }

  private async remove(index: number, call: IToolCall): Promise<IToolOutcome> {
    const cell = this.shared.cells[index];
    const card = this.card(`Delete cell ${index}`, call);
    const code = document.createElement('pre');
    code.className = 'mm-Approval-code mm-Diff-del';
    code.textContent = clipLines(cell.getSource());
    card.body.appendChild(code);
    if ((await this.decide(card, call)) === 'reject') {
      return { status: 'declined', result: REJECTED };
    }
    const now = this.shared.cells.indexOf(cell);
    if (now < 0) {
      return error('the cell was already deleted.');
    }
    if (this.added.has(cell.id)) {
      this.added.delete(cell.id);
      this.persist();
    } else {
      this.save(cell, now);
    }
    this.shared.deleteCell(now);
    return ok(`Deleted cell ${now}.`);
  }

  /** A cell's outputs for the server, each text bounded, images by type and size. */
  private report(index: number, status: string): any {
    const cell = this.shared.cells[index] as any;
    const outputs = (cell.outputs ?? []).map((o: any) => boundedOutput(o));
    return {
      index,
      execution_count: cell.execution_count ?? null,
      status: outputs.some((o: any) => o.output_type === 'error')
        ? 'error'
        : status,
      outputs
    };
  }

  // -- checkpoint and undo ----------------------------------------------------------------

  /** Before the task's first change to `cell`, keep it exactly as it is. */
  private save(cell: ISharedCell, index: number): void {
    if (this.saved.has(cell.id) || this.added.has(cell.id)) {
      return;
    }
    const before = index > 0 ? this.shared.cells[index - 1].id : null;
    this.saved.set(cell.id, { json: cell.toJSON(), index, after: before });
    this.persist();
  }

  /** The step in flight now (null: none), kept with the checkpoint. */
  private setInFlight(inFlight: IStepInFlight | null): void {
    this.inFlight = inFlight;
    this.persist();
  }

  /** Keep the checkpoint in the tab's storage, for an Undo after a page reload, with the
   * step in flight if one is (rewritten whole at each change and each phase of a step: a
   * few times a step, at most MistralServer.agent_max_steps steps a task). */
  private persist(): void {
    if (pageLeaving) {
      // the stream ends with the page and the task stops, rejecting its card or ending
      // its wait: the tab keeps the step as it was in flight, which the reloaded page says
      return;
    }
    const checkpoint: ICheckpoint = {
      path: this.panel.context.path,
      saved: [...this.saved.values()],
      added: [...this.added]
    };
    if (this.inFlight) {
      checkpoint.inFlight = this.inFlight;
    }
    // by its own sizes, not `changed`: a notebook closed meanwhile keeps its checkpoint
    const kept =
      this.saved.size > 0 || this.added.size > 0 || this.inFlight !== null;
    keepCheckpoint(this.task, kept ? checkpoint : null);
  }

  /** Put back every cell the task touched, exactly; remove the cells it added. Cells it
   * did not touch (the user's later edits included) stay as they are. */
  undo(): string | null {
    restoreCells(this.shared, this.saved.values(), this.added);
    this.added.clear();
    this.saved.clear();
    this.persist();
    this.mark();
    return null;
  }

  // -- approvals -------------------------------------------------------------------------

  /** An approval card for the step `step` ("Run cell 1"). */
  private card(step: string, call: IToolCall): ICard {
    const node = document.createElement('div');
    node.className = 'mm-Approval';
    node.dataset.callId = call.call_id;
    node.dataset.tool = call.name;
    const heading = document.createElement('div');
    heading.className = 'mm-Approval-title';
    heading.textContent = `${step}?`;
    const body = document.createElement('div');
    body.className = 'mm-Approval-body';
    const buttons = document.createElement('div');
    buttons.className = 'mm-Approval-buttons';
    node.append(heading, body, buttons);
    this.view.attach(node);
    return { node, body, buttons, step };
  }

  /** The user's decision (Approve all: this and the rest of the task); waits at most the
   * task's time left, then counts as a rejection. */
  private decide(card: ICard, call: IToolCall): Promise<Decision> {
    const settleCard = (decision: Decision, how: string) => {
      card.node.classList.add(`mm-mod-${decision}d`);
      const state = document.createElement('div');
      state.className = 'mm-Approval-state';
      state.textContent = how;
      card.buttons.replaceWith(state);
    };
    if (this.view.autoApprove.checked) {
      settleCard(
        'approve',
        'Approved (run without asking is on for this task).'
      );
      return Promise.resolve('approve');
    }
    return new Promise<Decision>(resolve => {
      let timer = 0;
      const switched = () => {
        if (this.view.autoApprove.checked) {
          finish('approve', 'Approved (run without asking was switched on).');
        }
      };
      const finish = (decision: Decision, how: string) => {
        if (this.waiting.delete(stopped)) {
          window.clearTimeout(timer);
          this.view.autoApprove.removeEventListener('change', switched);
          settleCard(decision, how);
          this.setInFlight(null);
          resolve(decision);
        }
      };
      // switching "run without asking" on while a card waits approves it too
      this.view.autoApprove.addEventListener('change', switched);
      const stopped = () => finish('reject', 'Rejected: the task stopped.');
      this.waiting.add(stopped);
      timer = window.setTimeout(
        () =>
          finish('reject', 'Rejected: not answered within the task’s time.'),
        Math.max(call.timeout_ms, 0)
      );
      const button = (label: string, className: string, act: () => void) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = `jp-Button mm-Approval-${className}`;
        b.textContent = label;
        b.addEventListener('click', act);
        card.buttons.appendChild(b);
      };
      button('Approve', 'approve', () => finish('approve', 'Approved.'));
      button('Reject', 'reject', () => finish('reject', 'Rejected.'));
      button('Approve all for this task', 'approveAll', () => {
        this.view.autoApprove.checked = true;
        finish('approve', 'Approved (and the rest of this task).');
      });
      this.setInFlight({ step: card.step, phase: 'approval' });
    });
  }

  // -- marks -----------------------------------------------------------------------------

  /** The record a cell the task writes carries: the same as an Insert's (provenance.ts),
   * `face: 'agent'`, with the task and its step. */
  private provenance(codeSha256: string): Record<string, unknown> {
    return agentRecord(
      {
        model: this.model,
        question: this.question,
        task: this.task,
        step: this.steps
      },
      codeSha256
    );
  }

  private stamp(cell: ISharedCell, codeSha256: string): void {
    cell.setMetadata('mistral', this.provenance(codeSha256) as any);
    this.mark();
  }

  /** The task's reply is complete: its cells get the server's full record (usage, cost,
   * request id, the body's hash) under what they had of their own. */
  complete(reply: Record<string, unknown>): void {
    if (this.panel.isDisposed) {
      return;
    }
    for (const cell of this.shared.cells) {
      const record = cell.getMetadata('mistral') as any;
      if (record && typeof record === 'object' && record.task === this.task) {
        cell.setMetadata('mistral', completedAgentRecord(record, reply) as any);
      }
    }
  }

  /** The badge on every cell that carries an agent's provenance. */
  mark(): void {
    markAgentCells(this.panel);
  }

  private get shared() {
    return this.panel.content.model!.sharedModel;
  }

  /** What ends each wait of the task (a card, the kernel) when it stops. */
  private readonly waiting = new Set<() => void>();
}

/** The badge on every cell of `panel` that carries an agent's provenance. */
export function markAgentCells(panel: NotebookPanel): void {
  if (panel.isDisposed) {
    return;
  }
  for (const widget of panel.content.widgets) {
    const record = widget.model.getMetadata('mistral') as any;
    // an Insert's cell carries the same record with another `face`, and no badge
    widget.toggleClass(
      'mm-AgentCell',
      !!record &&
        typeof record === 'object' &&
        (record.face === 'agent' || 'task' in record)
    );
  }
}

/** Put back the cells of `saved` exactly (by id: replaced, or re-inserted after the cell they
 * followed), and remove the cells whose ids are in `added`; one transaction. */
function restoreCells(
  shared: INotebookModel['sharedModel'],
  saved: Iterable<ISaved>,
  added: Iterable<string>
): void {
  shared.transact(() => {
    for (const id of added) {
      const at = shared.cells.findIndex(c => c.id === id);
      if (at >= 0) {
        shared.deleteCell(at);
      }
    }
    // Back in the order they were: each deleted one after the cell it followed.
    const ordered = [...saved].sort((a, b) => a.index - b.index);
    for (const entry of ordered) {
      const at = shared.cells.findIndex(c => c.id === entry.json.id);
      if (at >= 0) {
        shared.deleteCell(at);
        shared.insertCell(at, entry.json);
      } else {
        const previous =
          entry.after === null
            ? -1
            : shared.cells.findIndex(c => c.id === entry.after);
        const to =
          previous >= 0
            ? previous + 1
            : Math.min(entry.index, shared.cells.length);
        shared.insertCell(to, entry.json);
      }
    }
  });
}

/** The page is being left (reloaded, closed, navigated away): from then on a task's
 * checkpoint in the tab's storage stays as it was. Reset if the page comes back from the
 * browser's back-forward cache. */
let pageLeaving = false;
window.addEventListener('pagehide', () => {
  pageLeaving = true;
});
window.addEventListener('pageshow', () => {
  pageLeaving = false;
});

/** Where a task's checkpoint waits for a page reload: the tab's sessionStorage (it goes
 * with the tab, and never leaves the browser). */
const CHECKPOINT_KEY = 'mistral-magic:agent-checkpoint:';

export function storedCheckpoint(task: string): ICheckpoint | null {
  try {
    const raw = window.sessionStorage.getItem(CHECKPOINT_KEY + task);
    const value = raw ? JSON.parse(raw) : null;
    return value && Array.isArray(value.saved) && Array.isArray(value.added)
      ? value
      : null;
  } catch {
    return null;
  }
}

/** The newest tasks whose checkpoints the tab keeps (older ones are dropped: a long session
 * does not fill the tab's storage). */
const CHECKPOINTS_KEPT = 20;
const CHECKPOINT_ORDER = 'mistral-magic:agent-checkpoints';

function keepCheckpoint(task: string, checkpoint: ICheckpoint | null): void {
  const key = CHECKPOINT_KEY + task;
  const storage = window.sessionStorage;
  try {
    let order: string[] = JSON.parse(storage.getItem(CHECKPOINT_ORDER) ?? '[]');
    order = Array.isArray(order) ? order.filter(t => t !== task) : [];
    if (checkpoint) {
      order.push(task);
      for (const old of order.splice(0, order.length - CHECKPOINTS_KEPT)) {
        storage.removeItem(CHECKPOINT_KEY + old);
      }
    }
    storage.setItem(CHECKPOINT_ORDER, JSON.stringify(order));
    if (checkpoint) {
      storage.setItem(key, JSON.stringify(checkpoint));
    } else {
      storage.removeItem(key);
    }
  } catch {
    // too large for the tab's storage (big outputs): Undo stays, until a reload
    try {
      storage.removeItem(key);
    } catch {
      // storage unavailable
    }
  }
}

/** A task from before a page reload: its Undo, from the checkpoint the tab kept. */
export class RestoredTask implements IAgentUndo {
  constructor(
    readonly task: string,
    private readonly find: (path: string) => NotebookPanel | null
  ) {
    this.checkpoint = storedCheckpoint(task);
  }

  readonly stopped = true;
  readonly executing = false;

  /** The step the task was in the middle of when the page went away (the server stops a
   * task whose page leaves, so the task ended there). Null if none was. */
  get inFlight(): IStepInFlight | null {
    return this.checkpoint?.inFlight ?? null;
  }

  get changed(): boolean {
    const checkpoint = this.checkpoint;
    return (
      checkpoint !== null &&
      (checkpoint.saved.length > 0 || checkpoint.added.length > 0)
    );
  }

  undo(): string | null {
    const checkpoint = this.checkpoint;
    if (!checkpoint || !this.changed) {
      return null;
    }
    const panel = this.find(checkpoint.path);
    if (!panel || panel.isDisposed || !panel.content.model) {
      return `Open ${checkpoint.path} to undo this task’s changes.`;
    }
    restoreCells(
      panel.content.model.sharedModel,
      checkpoint.saved,
      checkpoint.added
    );
    // the step in flight stays known: the transcript says the same after another reload
    this.checkpoint = checkpoint.inFlight
      ? { ...checkpoint, saved: [], added: [] }
      : null;
    keepCheckpoint(this.task, this.checkpoint);
    markAgentCells(panel);
    return null;
  }

  interrupt(): void {
    // nothing of this task runs any more
  }

  private checkpoint: ICheckpoint | null;
}

function ok(result: string): IToolOutcome {
  return { status: 'ok', result };
}

function error(text: string): IToolOutcome {
  return { status: 'error', result: `Error: ${text}` };
}

const TIMED_OUT = Symbol('timed out');

function within<T>(
  work: Promise<T>,
  ms: number
): Promise<T | typeof TIMED_OUT> {
  let timer = 0;
  const limit = new Promise<typeof TIMED_OUT>(resolve => {
    timer = window.setTimeout(() => resolve(TIMED_OUT), Math.max(ms, 0));
  });
  return Promise.race([work, limit]).finally(() => window.clearTimeout(timer));
}

function clip(text: string, limit: number): string {
  return text.length <= limit
    ? text
    : `${text.slice(0, limit / 2)}\n…\n${text.slice(-limit / 2)}`;
}

function clipLines(text: string): string {
  const lines = text.split('\n');
  return lines.length <= SOURCE_LINES_SHOWN
    ? text
    : [
        ...lines.slice(0, SOURCE_LINES_SHOWN),
        `… ${lines.length - SOURCE_LINES_SHOWN} more lines`
      ].join('\n');
}

function joined(value: unknown): string {
  return Array.isArray(value) ? value.join('') : String(value ?? '');
}

/** One output with its texts cut and its images replaced by their size. */
function boundedOutput(output: any): any {
  if (output.output_type === 'stream') {
    return { ...output, text: clip(joined(output.text), OUTPUT_CHARS) };
  }
  if (output.output_type === 'error') {
    return {
      output_type: 'error',
      ename: output.ename,
      evalue: clip(String(output.evalue ?? ''), OUTPUT_CHARS),
      traceback: (output.traceback ?? [])
        .slice(-30)
        .map((l: string) => clip(l, OUTPUT_CHARS))
    };
  }
  const data: Record<string, string> = {};
  const sizes: Record<string, number> = {};
  for (const [mime, value] of Object.entries(output.data ?? {})) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (mime.startsWith('image/')) {
      data[mime] = '';
      sizes[mime] = text.length;
    } else if (mime === 'text/plain') {
      data[mime] = clip(text, OUTPUT_CHARS);
    } else {
      data[mime] = '';
    }
  }
  return { output_type: output.output_type, data, sizes };
}

/** The change old → new as lines: the common head and tail once, the middle as removed
 * and added lines (linear, so a long cell costs no more than its length). */
export function diffView(before: string, after: string): HTMLElement {
  const a = before.split('\n');
  const b = after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) {
    head++;
  }
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  ) {
    tail++;
  }
  const pre = document.createElement('pre');
  pre.className = 'mm-Diff';
  const line = (text: string, kind: string) => {
    const span = document.createElement('span');
    span.className = `mm-Diff-line mm-Diff-${kind}`;
    span.textContent = `${kind === 'add' ? '+' : kind === 'del' ? '-' : ' '} ${text}\n`;
    pre.appendChild(span);
  };
  a.slice(0, head).forEach(l => line(l, 'same'));
  a.slice(head, a.length - tail).forEach(l => line(l, 'del'));
  b.slice(head, b.length - tail).forEach(l => line(l, 'add'));
  a.slice(a.length - tail).forEach(l => line(l, 'same'));
  return pre;
}
