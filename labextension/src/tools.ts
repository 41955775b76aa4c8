/**
 * The browser's side of the sidebar's tool calls (contract: mistral_magic/server/relay.py).
 *
 * The server runs the tool loop; each call arrives as a `tool_call` event naming its
 * `runner`. The runner for that name runs it where the notebook is and the result goes back
 * by `POST tool_result`. Runners are looked up by name, so agent tools (issue #14: insert,
 * edit, run cells, which only the browser holding the notebook model can do) plug in as
 * another runner without touching the relay.
 */

import { NotebookPanel } from '@jupyterlab/notebook';

import { requestAPI } from './api';
import {
  IKernelTools,
  IToolOutcome,
  kernelId,
  kernelTools,
  runKernelTool
} from './kernel';
import { IToolCall } from './types';

/** Runs one relayed call for the notebook the question was about. Never rejects with
 * anything the model should not read: failures are error outcomes. */
export type ToolRunner = (
  call: IToolCall,
  panel: NotebookPanel | null
) => Promise<IToolOutcome>;

const runners = new Map<string, ToolRunner>();

/** Register the runner for `name` (the `runner` field of `tool_call` events). */
export function registerRunner(name: string, runner: ToolRunner): void {
  runners.set(name, runner);
}

registerRunner('kernel', async (call, panel) => {
  if (!panel || panel.isDisposed) {
    return {
      status: 'error',
      result: 'Error: the notebook this question was about is closed.'
    };
  }
  return runKernelTool(
    panel,
    call.name,
    call.arguments,
    call.max_chars,
    call.timeout_ms
  );
});

/** Run `call` with its runner and POST the outcome; resolves with what was posted. */
export async function relayToolCall(
  call: IToolCall,
  panel: NotebookPanel | null
): Promise<IToolOutcome> {
  const runner = runners.get(call.runner);
  let outcome: IToolOutcome;
  if (!runner) {
    outcome = {
      status: 'error',
      result: `Error: this JupyterLab cannot run ${call.runner} tools (update the mistral-magic extension).`
    };
  } else {
    try {
      outcome = await runner(call, panel);
    } catch (error) {
      outcome = {
        status: 'error',
        result: `Error: ${String((error as Error).message ?? error)}`
      };
    }
  }
  if (outcome.taskStopped) {
    return outcome; // the stop cancels the request on the server; nothing to answer
  }
  try {
    // {accepted: false}: the server stopped waiting (timeout, Stop); nothing to do.
    await requestAPI<{ accepted: boolean }>('tool_result', {
      method: 'POST',
      body: JSON.stringify({
        request_id: call.request_id,
        call_id: call.call_id,
        status: outcome.status,
        result: outcome.result
      })
    });
  } catch (error) {
    console.warn('mistral-magic: tool result not delivered', error);
  }
  return outcome;
}

/** The tools each kernel offers, asked once per kernel and kept by kernel id; forgotten
 * when the kernel restarts or runs a cell (a cell may register an `@tool` function). */
export class KernelToolCache {
  /** The panel's kernel's tools: cached, or asked for now (a busy or starting kernel
   * waited for at most `idleWaitMs`). A busy kernel keeps what it said before (its calls
   * would queue behind the running cell anyway). */
  async tools(panel: NotebookPanel, idleWaitMs: number): Promise<IKernelTools> {
    const id = kernelId(panel);
    if (!id) {
      return { state: 'no-kernel', tools: [] };
    }
    const cached = this.byKernel.get(id);
    if (cached) {
      return cached;
    }
    const epoch = this.epoch;
    const found = await kernelTools(panel, idleWaitMs);
    if (found.state === 'ok' && epoch === this.epoch) {
      this.byKernel.set(id, found);
    }
    return found;
  }

  /** The kernel restarted, or ran a cell: ask it again next time. */
  forget(id?: string | null): void {
    this.epoch += 1;
    if (id) {
      this.byKernel.delete(id);
    } else {
      this.byKernel.clear();
    }
  }

  private byKernel = new Map<string, IKernelTools>();
  private epoch = 0;
}
