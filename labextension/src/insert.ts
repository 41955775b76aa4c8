/**
 * The front end of `mistral_magic/cell_insert.py`: the kernel's widgets (the chat panel, the
 * Explain / Fix buttons under a traceback) put code into a new cell below the active cell at
 * once, instead of queueing it for the next executed cell.
 *
 * Comm target `mistral_magic`, both directions:
 * - the kernel opens a comm to it; we answer `{"action": "ready"}`;
 * - after a page reload the kernel still holds a comm to the page that went away, so on
 *   connecting to a kernel that has such a comm (asked with `comm_info_request`) we open a
 *   comm to the kernel's target of the same name, which the kernel takes as the new one;
 * - on `{"action": "insert_cell", "code", "metadata"}` a code cell holding `code` goes below
 *   the active cell of the notebook this kernel runs (the one in view when several share
 *   it), with `metadata` (the reply's provenance under `mistral`); never run;
 * - on `{"action": "tag_next_input", "code", "metadata"}` (the magic's code, offered through
 *   `set_next_input`), the cell the execute reply then adds with exactly that code gets
 *   `metadata`;
 * - before a cell holding `%mistral audit` runs, we send `{"action": "notebook", "path",
 *   "cells"}`: the notebook as it is open (sources, execution counts, `metadata.mistral`),
 *   which the audit reads instead of the saved file. It goes before the execute request, on
 *   the same connection: the kernel handles it first.
 */

import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { auditJSON, CellMetadata, insertBelow } from './notebook';

/** How long a `tag_next_input` waits for its cell (the execute reply follows at once). */
const TAG_WAIT_MS = 60_000;
const AUDIT = /^\s*%mistral\s+audit\b/m;

export const COMM_TARGET = 'mistral_magic';

export function serveCellInsertion(tracker: INotebookTracker): void {
  const served = new WeakSet<Kernel.IKernelConnection>();
  // The newest comm of each kernel (the one the kernel talks to).
  const comms = new WeakMap<Kernel.IKernelConnection, Kernel.IComm>();

  const panelOf = (kernel: Kernel.IKernelConnection): NotebookPanel | null => {
    const runs = (panel: NotebookPanel | null) =>
      !!panel && panel.sessionContext.session?.kernel === kernel;
    const current = tracker.currentWidget;
    return runs(current) ? current : (tracker.find(runs) ?? null);
  };

  const listen = (kernel: Kernel.IKernelConnection, comm: Kernel.IComm) => {
    comms.set(kernel, comm);
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as {
        action?: string;
        code?: unknown;
        metadata?: unknown;
      };
      if (typeof data.code !== 'string') {
        return;
      }
      const metadata =
        data.metadata && typeof data.metadata === 'object'
          ? (data.metadata as CellMetadata)
          : {};
      const panel = panelOf(kernel);
      if (!panel) {
        console.warn('mistral-magic: no open notebook runs this kernel');
        return;
      }
      if (data.action === 'insert_cell') {
        insertBelow(panel, data.code, metadata);
      } else if (data.action === 'tag_next_input') {
        tagNextCell(panel, data.code, metadata);
      }
    };
  };

  const serve = (kernel: Kernel.IKernelConnection | null | undefined) => {
    if (!kernel || served.has(kernel)) {
      return;
    }
    served.add(kernel); // the target stays registered through restarts of this connection
    kernel.registerCommTarget(COMM_TARGET, comm => {
      listen(kernel, comm);
      comm.send({ action: 'ready' });
    });
    void reconnect(kernel, listen);
  };

  const watch = (panel: NotebookPanel) => {
    serve(panel.sessionContext.session?.kernel);
    panel.sessionContext.kernelChanged.connect((_, change) =>
      serve(change.newValue)
    );
  };
  tracker.forEach(watch);
  tracker.widgetAdded.connect((_, panel) => watch(panel));

  NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
    if (
      cell.model.type !== 'code' ||
      !AUDIT.test(cell.model.sharedModel.getSource())
    ) {
      return;
    }
    const panel = tracker.find(p => p.content === notebook);
    const kernel = panel?.sessionContext.session?.kernel;
    const comm = kernel ? comms.get(kernel) : undefined;
    if (!panel || !comm || comm.isDisposed) {
      return; // the audit reads the saved file instead
    }
    comm.send({
      action: 'notebook',
      path: panel.context.path,
      ...auditJSON(panel)
    });
  });
}

/** Put `metadata` on the cell `set_next_input` is about to add holding exactly `code`. */
function tagNextCell(
  panel: NotebookPanel,
  code: string,
  metadata: CellMetadata
): void {
  const model = panel.content.model;
  if (!model) {
    return;
  }
  const cells = model.cells;
  const tag = (cell: any) => {
    for (const [key, value] of Object.entries(metadata)) {
      cell.setMetadata(key, value);
    }
  };
  // The execute reply may have added the cell before this message got here (they travel
  // on different channels): then it is already in the notebook, untagged.
  for (let i = cells.length - 1; i >= 0; i--) {
    const cell = cells.get(i);
    if (cell.sharedModel.getSource() === code && !cell.getMetadata('mistral')) {
      tag(cell);
      return;
    }
  }
  const added = (_: unknown, change: { type: string; newValues: any[] }) => {
    if (change.type !== 'add') {
      return;
    }
    for (const cell of change.newValues) {
      if (cell.sharedModel.getSource() === code) {
        tag(cell);
        stop();
        return;
      }
    }
  };
  const stop = () => {
    window.clearTimeout(timer);
    cells.changed.disconnect(added);
  };
  const timer = window.setTimeout(stop, TAG_WAIT_MS);
  cells.changed.connect(added);
}

/** A kernel that opened its comm to a page that is gone gets one to this page. */
async function reconnect(
  kernel: Kernel.IKernelConnection,
  listen: (kernel: Kernel.IKernelConnection, comm: Kernel.IComm) => void
): Promise<void> {
  let comms: Record<string, unknown> = {};
  try {
    const reply = await kernel.requestCommInfo({ target_name: COMM_TARGET });
    if (reply.content.status === 'ok') {
      comms = reply.content.comms;
    }
  } catch {
    return; // the kernel went away: nothing to reconnect
  }
  const stale = Object.keys(comms).filter(id => !kernel.hasComm(id));
  if (!stale.length || kernel.isDisposed) {
    return;
  }
  const comm = kernel.createComm(COMM_TARGET);
  listen(kernel, comm);
  comm.open({ action: 'ready' });
}
