/**
 * mistral-magic for JupyterLab 4: a Mistral chat in the right sidebar that knows the active
 * notebook, "Explain" / "Fix" on error outputs, and code from replies inserted as new cells
 * (never run). The model is reached through the mistral_magic jupyter_server extension, which
 * holds the API key; the browser never sees it.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { ChatSidebar, DEFAULT_SETTINGS, IChatSettings } from './chat';
import { watchErrors } from './errors';
import { inlineCompletion } from './inline';
import { serveCellInsertion } from './insert';
import { hasError } from './notebook';

const PLUGIN_ID = 'mistral-magic:plugin';

namespace CommandIDs {
  export const open = 'mistral-magic:open';
  export const askCell = 'mistral-magic:ask-cell';
  export const explainError = 'mistral-magic:explain-error';
  export const fixError = 'mistral-magic:fix-error';
}

const CELL_PROMPT =
  'Explain what the active cell does, and point out any problems in it.';

function readSettings(
  settings: ISettingRegistry.ISettings | null
): IChatSettings {
  if (!settings) {
    return DEFAULT_SETTINGS;
  }
  const composite = settings.composite as any;
  return {
    model: composite.model ?? '',
    temperature: composite.temperature ?? null,
    contextBudget: composite.contextBudget ?? null,
    tools: composite.tools ?? true,
    kernelIdleWait: seconds(
      composite.kernelIdleWait,
      DEFAULT_SETTINGS.kernelIdleWait,
      schemaMaximum(settings, 'kernelIdleWait')
    ),
    defaultContext: {
      ...DEFAULT_SETTINGS.defaultContext,
      ...(composite.defaultContext ?? {})
    }
  };
}

/** The `maximum` that plugin.json gives the setting `key` (Infinity if none): the one place
 * where a setting's bound is written. */
function schemaMaximum(
  settings: ISettingRegistry.ISettings,
  key: string
): number {
  const maximum = settings.schema.properties?.[key]?.maximum;
  return typeof maximum === 'number' ? maximum : Infinity;
}

/** A setting in seconds: a finite number of 0 or more, at most `max`, else `fallback` (the
 * schema checks the Settings Editor's input; this guards a hand-edited overrides.json, whose
 * values JupyterLab does not check against the schema). */
function seconds(value: unknown, fallback: number, max: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? Math.min(value, max)
    : fallback;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Mistral chat sidebar, error buttons and insert-code for notebooks.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ISettingRegistry, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new ChatSidebar(tracker, rendermime);
    app.shell.add(sidebar, 'right', { rank: 900 });
    restorer?.add(sidebar, sidebar.id);
    void sidebar.start();

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          sidebar.settings = readSettings(settings);
          sidebar.saveTools = on => {
            settings
              .set('tools', on)
              .catch(reason =>
                console.warn('mistral-magic: tools setting not saved', reason)
              );
          };
          settings.changed.connect(() => {
            sidebar.settings = readSettings(settings);
          });
        })
        .catch(reason =>
          console.warn('mistral-magic: settings not loaded', reason)
        );
    }

    const open = () => {
      app.shell.activateById(sidebar.id);
    };
    const askAboutError = (
      panel: NotebookPanel,
      index: number,
      fix: boolean
    ) => {
      open();
      // The server words the question (mistral_magic/engine/prompts.py); this is its label.
      void sidebar.ask(fix ? 'Fix the error' : 'Explain the error', {
        errorCell: index,
        panel,
        kind: fix ? 'fix' : 'explain'
      });
    };

    const checks = new WeakMap<NotebookPanel, () => void>();
    const watch = (panel: NotebookPanel) => {
      if (!checks.has(panel)) {
        checks.set(panel, watchErrors(panel, askAboutError));
      }
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
    NotebookActions.executed.connect((_, { notebook }) => {
      const panel = tracker.find(p => p.content === notebook);
      if (panel) {
        checks.get(panel)?.();
      }
      sidebar.invalidateVariables();
    });

    const activeErrorCell = (): [NotebookPanel, number] | null => {
      const panel = tracker.currentWidget;
      if (!panel) {
        return null;
      }
      const index = panel.content.activeCellIndex;
      return hasError(panel, index) ? [panel, index] : null;
    };

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open the Mistral chat',
      caption: 'Show the Mistral sidebar and focus its input',
      execute: () => {
        open();
        sidebar.focusInput();
      }
    });
    app.commands.addCommand(CommandIDs.askCell, {
      label: 'Ask Mistral about the active cell',
      isEnabled: () => tracker.currentWidget?.content.activeCell !== null,
      execute: () => {
        open();
        void sidebar.ask(CELL_PROMPT, { panel: tracker.currentWidget });
      }
    });
    app.commands.addCommand(CommandIDs.explainError, {
      label: 'Explain the error in the active cell with Mistral',
      isEnabled: () => activeErrorCell() !== null,
      execute: () => {
        const found = activeErrorCell();
        if (found) {
          askAboutError(found[0], found[1], false);
        }
      }
    });
    app.commands.addCommand(CommandIDs.fixError, {
      label: 'Fix the error in the active cell with Mistral',
      isEnabled: () => activeErrorCell() !== null,
      execute: () => {
        const found = activeErrorCell();
        if (found) {
          askAboutError(found[0], found[1], true);
        }
      }
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: 'Mistral' });
      }
    }
  }
};

/** Cells from the kernel's widgets (chat panel, Explain / Fix), inserted at once: its own
 * plugin, so that it works wherever notebooks are, with or without the sidebar. */
const cellInsertion: JupyterFrontEndPlugin<void> = {
  id: 'mistral-magic:cell-insert',
  description:
    'Lets mistral_magic widgets insert code as a new cell (comm target mistral_magic).',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_: JupyterFrontEnd, tracker: INotebookTracker) => {
    serveCellInsertion(tracker);
  }
};

export default [plugin, cellInsertion, inlineCompletion];
