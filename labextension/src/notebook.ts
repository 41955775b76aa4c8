/** What the sidebar reads from, and writes to, a notebook. Writing never executes. */

import { NotebookPanel } from '@jupyterlab/notebook';

const MAX_OUTPUT_CHARS = 20000;
/** What travels of a selection: the server sends the model at most its first 4,000
 * characters (after redaction, which sees this much), and the chip says how long it was. */
export const MAX_SELECTION_CHARS = 16000;

function clip(text: string): string {
  return text.length > MAX_OUTPUT_CHARS
    ? text.slice(0, MAX_OUTPUT_CHARS)
    : text;
}

function textOf(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  return Array.isArray(value) ? value.join('') : '';
}

/** Only the text parts of an output: images and HTML stay in the browser. */
function textOutput(output: any): any | null {
  switch (output.output_type) {
    case 'stream':
      return {
        output_type: 'stream',
        name: output.name,
        text: clip(textOf(output.text))
      };
    case 'execute_result':
    case 'display_data': {
      const plain = output.data?.['text/plain'];
      if (plain === undefined) {
        return null;
      }
      return {
        output_type: output.output_type,
        data: { 'text/plain': clip(textOf(plain)) }
      };
    }
    case 'error':
      return {
        output_type: 'error',
        ename: output.ename,
        evalue: output.evalue,
        traceback: (output.traceback || []).slice(-60)
      };
    default:
      return null;
  }
}

/** The notebook as nbformat-shaped JSON, reduced to sources and text outputs. */
export function notebookJSON(panel: NotebookPanel): { cells: any[] } {
  const cells: any[] = [];
  const model = panel.content.model;
  if (!model) {
    return { cells };
  }
  for (const cell of model.sharedModel.cells) {
    const json: any = cell.toJSON();
    const slim: any = {
      cell_type: json.cell_type,
      source: textOf(json.source)
    };
    if (json.cell_type === 'code') {
      slim.execution_count = json.execution_count ?? null;
      slim.outputs = (json.outputs || [])
        .map(textOutput)
        .filter((o: any) => o !== null);
    }
    cells.push(slim);
  }
  return { cells };
}

/** The text selected in the active cell's editor ("" when nothing is selected). */
export function selectedText(panel: NotebookPanel): string {
  const editor = panel.content.activeCell?.editor;
  if (!editor) {
    return '';
  }
  const selection = editor.getSelection();
  const start = editor.getOffsetAt(selection.start);
  const end = editor.getOffsetAt(selection.end);
  if (start === end) {
    return '';
  }
  return editor.model.sharedModel
    .getSource()
    .slice(Math.min(start, end), Math.max(start, end));
}

/** Whether cell `index` of the notebook shows an error output. */
export function hasError(panel: NotebookPanel, index: number): boolean {
  const cell = panel.content.model?.sharedModel.cells[index];
  const json: any = cell?.toJSON();
  return !!json?.outputs?.some((o: any) => o.output_type === 'error');
}

/** A new code cell below the notebook's active cell holding `code`; it is not run. */
export function insertBelow(panel: NotebookPanel, code: string): number {
  const notebook = panel.content;
  const model = notebook.model;
  if (!model) {
    throw new Error('The notebook is not ready.');
  }
  const index = Math.max(notebook.activeCellIndex, -1) + 1;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source: code,
    metadata: {}
  });
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  return index;
}

/** The active cell's source becomes `code`; it is not run. Returns the cell's index. */
export function replaceActive(panel: NotebookPanel, code: string): number {
  const cell = panel.content.activeCell;
  if (!cell) {
    throw new Error('The notebook has no active cell.');
  }
  cell.model.sharedModel.setSource(code);
  return panel.content.activeCellIndex;
}
