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

/** A question's figures travel (PNG outputs of at most this many cells, each at most this
 * long in base64): the server sends them to a model that can see, and describes them to
 * others. */
const MAX_FIGURE_CELLS = 4;
const MAX_FIGURE_CHARS = 8 * 1024 * 1024;

/** Which cells' figures may matter to a question: the active cell's (its chip), the newest
 * cell with a figure ("the plot above"), and cells whose execution count the question names
 * (`In[7]`, "cell 7"). The server decides which it sends. */
export interface IFigureChoice {
  active: number | null;
  prompt: string;
}

function pngOf(output: any): string {
  const png = output?.data?.['image/png'];
  const text = textOf(png);
  return text.length <= MAX_FIGURE_CHARS ? text : '';
}

function figureCells(cells: any[], choice: IFigureChoice): Set<number> {
  const withFigure = cells
    .map((json, index) => ({ json, index }))
    .filter(({ json }) => (json.outputs || []).some((o: any) => pngOf(o)));
  const chosen = new Set<number>();
  if (choice.active !== null) {
    chosen.add(choice.active);
  }
  if (withFigure.length) {
    chosen.add(withFigure[withFigure.length - 1].index);
  }
  const named = new Set((choice.prompt.match(/\d+/g) || []).map(Number));
  for (const { json, index } of withFigure) {
    if (named.has(json.execution_count)) {
      chosen.add(index);
    }
  }
  return new Set([...chosen].slice(0, MAX_FIGURE_CELLS));
}

/** Only the text parts of an output (and, with `keepPng`, its PNG): other images and HTML
 * stay in the browser. */
function textOutput(output: any, keepPng = false): any | null {
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
      const png = keepPng ? pngOf(output) : '';
      if (plain === undefined && !png) {
        return null;
      }
      const data: any = {};
      if (plain !== undefined) {
        data['text/plain'] = clip(textOf(plain));
      }
      if (png) {
        data['image/png'] = png;
      }
      return { output_type: output.output_type, data };
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

/** The notebook as nbformat-shaped JSON, reduced to sources and text outputs, and the PNG
 * outputs of the cells `figures` picks (none without it: the chips' preview needs none). */
export function notebookJSON(
  panel: NotebookPanel,
  figures: IFigureChoice | null = null
): { cells: any[] } {
  const cells: any[] = [];
  const model = panel.content.model;
  if (!model) {
    return { cells };
  }
  const all: any[] = model.sharedModel.cells.map(cell => cell.toJSON());
  const keep = figures ? figureCells(all, figures) : new Set<number>();
  all.forEach((json: any, index: number) => {
    const slim: any = {
      cell_type: json.cell_type,
      source: textOf(json.source)
    };
    if (json.cell_type === 'code') {
      slim.execution_count = json.execution_count ?? null;
      slim.outputs = (json.outputs || [])
        .map((o: any) => textOutput(o, keep.has(index)))
        .filter((o: any) => o !== null);
    }
    cells.push(slim);
  });
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

/** Metadata for a cell (`{"mistral": provenance}`), put on it key by key. */
export type CellMetadata = Record<string, unknown>;

/** A new code cell below the notebook's active cell holding `code`, with `metadata` (the
 * provenance of the reply it came from); it is not run. */
export function insertBelow(
  panel: NotebookPanel,
  code: string,
  metadata: CellMetadata = {}
): number {
  const notebook = panel.content;
  const model = notebook.model;
  if (!model) {
    throw new Error('The notebook is not ready.');
  }
  const index = Math.max(notebook.activeCellIndex, -1) + 1;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source: code,
    metadata: metadata as any
  });
  notebook.activeCellIndex = index;
  notebook.mode = 'command';
  return index;
}

/** The active cell's source becomes `code`, with `metadata`; it is not run. Returns the
 * cell's index. */
export function replaceActive(
  panel: NotebookPanel,
  code: string,
  metadata: CellMetadata = {}
): number {
  const cell = panel.content.activeCell;
  if (!cell) {
    throw new Error('The notebook has no active cell.');
  }
  cell.model.sharedModel.setSource(code);
  for (const [key, value] of Object.entries(metadata)) {
    cell.model.setMetadata(key, value);
  }
  return panel.content.activeCellIndex;
}

/** The notebook as the kernel's `%mistral audit` reads it: every cell's type, execution
 * count, source and `metadata.mistral`, and its outputs' `metadata.mistral` (the provenance
 * of answers shown there); no output data. */
export function auditJSON(panel: NotebookPanel): { cells: any[] } {
  const model = panel.content.model;
  if (!model) {
    return { cells: [] };
  }
  const cells = model.sharedModel.cells.map(cell => {
    const json: any = cell.toJSON();
    const slim: any = {
      cell_type: json.cell_type,
      source: textOf(json.source),
      metadata: json.metadata?.mistral ? { mistral: json.metadata.mistral } : {}
    };
    if (json.cell_type === 'code') {
      slim.execution_count = json.execution_count ?? null;
      slim.outputs = (json.outputs || [])
        .filter((o: any) => o.metadata?.mistral)
        .map((o: any) => ({
          output_type: o.output_type,
          metadata: { mistral: o.metadata.mistral }
        }));
    }
    return slim;
  });
  return { cells };
}
