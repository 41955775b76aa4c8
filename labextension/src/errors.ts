/** "Explain" and "Fix" buttons under every error output of a notebook.
 *
 * The bar goes on a line of its own under the traceback (the output's row wraps), so the
 * traceback keeps its full width. A cell whose kernel shows its own Explain / Fix widget
 * (`%mistral errors on`: an output marked with ERROR_HELP_METADATA) gets no second set. */

import { CodeCell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

export type ErrorAction = (
  panel: NotebookPanel,
  cellIndex: number,
  fix: boolean
) => void;

const ACTIONS_CLASS = 'mm-ErrorActions';
const HOST_CLASS = 'mm-mod-errorActions';
/** Output metadata of the kernel's Explain / Fix widget (mistral_magic/widgets.py). */
export const ERROR_HELP_METADATA = 'mistral_magic';

/** Keep the buttons on the error outputs of `panel`, as cells run and outputs change.
 * Returns a function that schedules a check (call it when a cell finished running). */
export function watchErrors(
  panel: NotebookPanel,
  act: ErrorAction
): () => void {
  let frame = 0;
  const schedule = () => {
    if (!frame && !panel.isDisposed) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        decorate(panel, act);
      });
    }
  };
  panel.content.modelContentChanged.connect(schedule);
  void panel.context.ready.then(schedule);
  void panel.revealed.then(schedule);
  panel.disposed.connect(() => cancelAnimationFrame(frame));
  return schedule;
}

function decorate(panel: NotebookPanel, act: ErrorAction): void {
  if (panel.isDisposed) {
    return;
  }
  panel.content.widgets.forEach((cell, index) => {
    if (!(cell instanceof CodeCell)) {
      return;
    }
    if (
      (cell.model as { executionState?: string }).executionState === 'running'
    ) {
      return; // the kernel's own buttons may still come; checked again when it finishes
    }
    const outputs = cell.model.outputs;
    const area = cell.outputArea;
    const kernelOffersHelp = hasKernelHelp(cell);
    for (let i = 0; i < outputs.length; i++) {
      if (outputs.get(i).type !== 'error') {
        continue;
      }
      const child = area.widgets[i];
      if (!child) {
        continue;
      }
      const existing = child.node.querySelector(`:scope > .${ACTIONS_CLASS}`);
      if (kernelOffersHelp) {
        existing?.remove();
        child.removeClass(HOST_CLASS);
        continue;
      }
      if (existing) {
        continue;
      }
      const bar = document.createElement('div');
      bar.className = ACTIONS_CLASS;
      bar.append(
        button('Explain', 'Ask Mistral to explain this error', () => {
          act(panel, cellIndexOf(panel, cell, index), false);
        }),
        button(
          'Fix',
          'Ask Mistral for the corrected code (offered as a cell, not run)',
          () => {
            act(panel, cellIndexOf(panel, cell, index), true);
          }
        )
      );
      child.addClass(HOST_CLASS);
      child.node.appendChild(bar);
    }
  });
}

/** Whether the cell shows the kernel's own Explain / Fix widget. */
function hasKernelHelp(cell: CodeCell): boolean {
  const outputs = cell.model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const marker = outputs.get(i).metadata?.[ERROR_HELP_METADATA] as
      { error_help?: boolean } | undefined;
    if (marker?.error_help) {
      return true;
    }
  }
  return false;
}

function cellIndexOf(
  panel: NotebookPanel,
  cell: CodeCell,
  fallback: number
): number {
  const index = panel.content.widgets.indexOf(cell);
  return index >= 0 ? index : fallback;
}

function button(
  label: string,
  title: string,
  onClick: () => void
): HTMLButtonElement {
  const element = document.createElement('button');
  element.type = 'button';
  element.className = `jp-Button jp-mod-styled jp-mod-reject mm-ErrorAction mm-ErrorAction-${label.toLowerCase()}`;
  element.textContent = label;
  element.title = title;
  element.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return element;
}
