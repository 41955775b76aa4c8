/**
 * The inline completion plugin: registers the Mistral provider with JupyterLab's inline
 * completer, keeps each notebook's kernel scope (read after executions), and shows the
 * on/off toggle (status bar, command palette; the Settings Editor has it under Inline
 * Completer -> Mistral provider) and this session's completion tokens and cost (status bar
 * tooltip, a line in the Mistral sidebar).
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Panel, Widget } from '@lumino/widgets';

import { mistralIcon } from './icon';
import { IKernelScope, ScopeWatcher } from './inlineScope';
import {
  IScopeWaits,
  MistralInlineProvider,
  PROVIDER_ID
} from './inlineProvider';

const INLINE_COMPLETER = '@jupyterlab/completer-extension:inline-completer';
const SIDEBAR_ID = 'mistral-magic-sidebar';
export const TOGGLE_COMMAND = 'mistral-magic:toggle-inline-completion';

export const inlineCompletion: JupyterFrontEndPlugin<void> = {
  id: 'mistral-magic:inline-completion',
  description:
    'Ghost text from Mistral in notebook cells, through the JupyterLab inline completer.',
  autoStart: true,
  requires: [ICompletionProviderManager, INotebookTracker],
  optional: [ISettingRegistry, IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    tracker: INotebookTracker,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    if (typeof manager.registerInlineProvider !== 'function') {
      return; // JupyterLab 4.0 / Notebook 7.0: no inline completer
    }
    // A notebook's scope is first read when a completion is asked in it, then after each
    // execution (when the kernel is idle again).
    const watchers = new WeakMap<NotebookPanel, ScopeWatcher>();
    const scopeOf = (
      panel: NotebookPanel,
      waits: IScopeWaits
    ): Promise<IKernelScope | null> => {
      let watcher = watchers.get(panel);
      if (!watcher) {
        // the server's count of inline completions goes to the kernel with each read
        watcher = new ScopeWatcher(panel, () => provider.status?.usage ?? null);
        watchers.set(panel, watcher);
      }
      return watcher.current(waits.waitMs, waits.readMs);
    };
    NotebookActions.executed.connect((_, { notebook }) => {
      const panel = tracker.find(p => p.content === notebook);
      if (panel) {
        watchers.get(panel)?.invalidate();
      }
    });

    const provider = new MistralInlineProvider({ scopeOf });
    manager.registerInlineProvider(provider);
    void provider.refreshStatus();

    app.commands.addCommand(TOGGLE_COMMAND, {
      label: 'Mistral inline completion',
      caption: 'Turn Mistral ghost text in notebook cells on or off',
      isToggled: () => provider.enabled,
      isEnabled: () => registry !== null,
      execute: async () => {
        if (!registry) {
          return;
        }
        const settings = await registry.load(INLINE_COMPLETER);
        const providers = { ...((settings.user.providers as any) ?? {}) };
        providers[PROVIDER_ID] = {
          ...(providers[PROVIDER_ID] ?? {}),
          enabled: !provider.enabled
        };
        await settings.set('providers', providers);
      }
    });
    palette?.addItem({ command: TOGGLE_COMMAND, category: 'Mistral' });

    if (statusBar) {
      const item = new Widget();
      item.addClass('mm-InlineStatus');
      item.node.setAttribute('role', 'button');
      item.node.addEventListener('click', () => {
        void app.commands.execute(TOGGLE_COMMAND);
      });
      const show = () => renderStatus(item.node, provider);
      provider.changed.connect(show);
      show();
      statusBar.registerStatusItem('mistral-magic:inline-completion', {
        item,
        align: 'right',
        rank: 50,
        isActive: () => tracker.currentWidget !== null
      });
    }

    // This session's usage, as a line in the Mistral sidebar (when it is there).
    const usageLine = document.createElement('div');
    usageLine.className = 'mm-InlineUsage';
    usageLine.hidden = true;
    provider.changed.connect(() => renderUsage(usageLine, provider));
    void app.restored.then(() => {
      for (const widget of app.shell.widgets('right')) {
        if (widget.id === SIDEBAR_ID && widget instanceof Panel) {
          widget.insertWidget(1, new Widget({ node: usageLine }));
          renderUsage(usageLine, provider);
        }
      }
    });
  }
};

function usageText(provider: MistralInlineProvider): string {
  const usage = provider.status?.usage;
  if (!usage || !usage.requests) {
    return '';
  }
  const plural = usage.requests === 1 ? '' : 's';
  return (
    `${usage.requests} inline completion${plural} this session: ` +
    `${usage.completion_tokens.toLocaleString()} completion tokens, ` +
    `${usage.prompt_tokens.toLocaleString()} prompt tokens, ${usage.cost_text}`
  );
}

function renderUsage(line: HTMLElement, provider: MistralInlineProvider): void {
  const text = usageText(provider);
  line.textContent = text;
  line.hidden = !text;
}

function renderStatus(
  node: HTMLElement,
  provider: MistralInlineProvider
): void {
  const status = provider.status;
  let state: string;
  let title: string;
  if (!provider.enabled) {
    state = 'off';
    title = 'Mistral inline completion is off. Click to turn it on.';
  } else if (status && !status.available) {
    state = 'no model server';
    title = `Mistral inline completion is on but cannot run: ${status.reason}`;
  } else {
    state = 'on';
    const how =
      status?.mode === 'fim'
        ? `${status.model}, fill-in-the-middle`
        : status
          ? `${status.model}, chat`
          : 'asking the server';
    title = `Mistral inline completion is on (${how}). Click to turn it off.`;
  }
  const usage = usageText(provider);
  node.replaceChildren(
    mistralIcon.element({ tag: 'span', className: 'mm-InlineStatus-icon' }),
    document.createTextNode(`Mistral: ${state}`)
  );
  node.dataset.state = state;
  node.title = usage ? `${title}\n${usage}` : title;
}
