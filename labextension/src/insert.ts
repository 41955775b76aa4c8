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
 * - on `{"action": "insert_cell", "code"}` a code cell holding `code` goes below the active
 *   cell of the notebook this kernel runs (the one in view when several share it); never run.
 */

import { NotebookPanel, INotebookTracker } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { insertBelow } from './notebook';

export const COMM_TARGET = 'mistral_magic';

export function serveCellInsertion(tracker: INotebookTracker): void {
  const served = new WeakSet<Kernel.IKernelConnection>();

  const panelOf = (kernel: Kernel.IKernelConnection): NotebookPanel | null => {
    const runs = (panel: NotebookPanel | null) =>
      !!panel && panel.sessionContext.session?.kernel === kernel;
    const current = tracker.currentWidget;
    return runs(current) ? current : (tracker.find(runs) ?? null);
  };

  const listen = (kernel: Kernel.IKernelConnection, comm: Kernel.IComm) => {
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as { action?: string; code?: unknown };
      if (data.action !== 'insert_cell' || typeof data.code !== 'string') {
        return;
      }
      const panel = panelOf(kernel);
      if (!panel) {
        console.warn('mistral-magic: no open notebook runs this kernel');
        return;
      }
      insertBelow(panel, data.code);
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
