/**
 * eda-gateway JupyterLab extension: a resource monitor (status bar item and
 * sidebar), an EDA Runner for code an assistant wrote, and notifications for
 * refusals and stops. Everything reads one shared ResourceModel.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { IConsoleTracker } from '@jupyterlab/console';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookCellExecutor, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ILauncher } from '@jupyterlab/launcher';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Token } from '@lumino/coreutils';

import { adminPlugin } from './admin/plugin';
import { fetchJSON } from './api';
import { KernelUsageItem, KernelUsageSection } from './kernelusage';
import { IChannel, ResourceModel } from './model';
import { precheckedExecutor, precheckModel } from './precheck';
import { ResourceMonitor } from './monitor';
import { notifyVerdicts } from './notify';
import { RunnerPanel } from './runner';
import { sessionNameOf } from './sessions';
import { StatusItem } from './statusbar';
import { watchTracker } from './watch';
import { welcomeLabel } from './welcome';

export { ResourceModel, levelOf, formatDuration } from './model';

export const IResourceModel = new Token<ResourceModel>(
  'eda-gateway:IResourceModel',
  'The shared model of my execution budget and the server load.'
);

export const CommandIDs = {
  openMonitor: 'eda-gateway:open-monitor',
  openRunner: 'eda-gateway:open-runner',
  welcome: 'eda-gateway:welcome',
  refresh: 'eda-gateway:refresh'
};

const MODEL_PLUGIN = 'eda-gateway:model';
const MONITOR_ID = 'eda-resource-monitor';

const gaugeIcon = new LabIcon({
  name: 'eda-gateway:gauge',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M12 4a10 10 0 0 0-10 10c0 2.4.85 4.6 2.26 6.3l1.53-1.28A8 8 0 1 1 18.2 19l1.53 1.29A10 10 0 0 0 12 4zm4.2 4.4-5.3 4.7a1.6 1.6 0 1 0 2.2 2.2z"/></svg>'
});

/** One model per page, fed by polls, kernel activity and other tabs. */
const modelPlugin: JupyterFrontEndPlugin<ResourceModel> = {
  id: MODEL_PLUGIN,
  description: 'Polls my execution budget and server load; hears kernels and other tabs.',
  autoStart: true,
  provides: IResourceModel,
  optional: [ISettingRegistry, INotebookTracker, IConsoleTracker],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null,
    notebooks: INotebookTracker | null,
    consoles: IConsoleTracker | null
  ): ResourceModel => {
    const channel =
      typeof BroadcastChannel === 'undefined'
        ? null
        : (new BroadcastChannel(`eda-gateway:${PageConfig.getBaseUrl()}`) as unknown as IChannel);
    const model = new ResourceModel({ fetchJSON, channel });
    let notify = true;

    if (notebooks) {
      watchTracker(model, notebooks);
    }
    if (consoles) {
      watchTracker(model, consoles);
    }
    // A kernel started or shut down changes what the monitor lists.
    app.serviceManager.kernels.runningChanged.connect(() => model.refreshSoon());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') {
        model.refreshSoon(); // standby skipped polls while hidden
      }
    });
    notifyVerdicts(
      model,
      () => notify,
      () => void app.commands.execute(CommandIDs.openMonitor)
    );

    const settingsLoaded = settingRegistry
      ? settingRegistry
          .load(MODEL_PLUGIN)
          .then(settings => {
            const apply = (): void => {
              model.intervalSeconds = settings.get('refreshInterval').composite as number;
              notify = settings.get('notifications').composite as boolean;
            };
            apply();
            settings.changed.connect(apply);
          })
          .catch(reason => console.warn('eda-gateway: settings not loaded', reason))
      : Promise.resolve();
    void Promise.all([app.restored, settingsLoaded]).then(() => model.start());
    precheckModel.current = model; // the notebook pre-check reads it when a cell runs
    return model;
  }
};

/** The status bar item, the sidebar dashboard and the EDA Runner. */
const uiPlugin: JupyterFrontEndPlugin<void> = {
  id: 'eda-gateway:ui',
  description: 'Resource Monitor sidebar, status bar item and EDA Runner panel.',
  autoStart: true,
  requires: [IResourceModel, IRenderMimeRegistry, IEditorServices],
  optional: [IStatusBar, ICommandPalette, ILayoutRestorer, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    model: ResourceModel,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null
  ): void => {
    const { commands, shell } = app;
    const category = 'EDA Gateway';

    const monitor = new ResourceMonitor({
      model,
      openRunner: () => void commands.execute(CommandIDs.openRunner),
      // a notebook's name, else what this page ran there (e.g. "EDA Runner: sales")
      nameOf: kernelId => sessionNameOf(app.serviceManager.sessions, kernelId) ?? model.kernelLabel(kernelId)
    });
    monitor.id = MONITOR_ID;
    monitor.title.icon = gaugeIcon;
    monitor.title.caption = 'Resource Monitor';
    shell.add(monitor, 'right', { rank: 200 });
    restorer?.add(monitor, MONITOR_ID);

    let runner: MainAreaWidget<RunnerPanel> | null = null;

    commands.addCommand(CommandIDs.openMonitor, {
      label: 'Open Resource Monitor',
      caption: 'My execution budget, kernels and the server load',
      icon: gaugeIcon,
      execute: () => shell.activateById(MONITOR_ID)
    });
    commands.addCommand(CommandIDs.openRunner, {
      label: 'Open EDA Runner',
      caption: 'Run code on one of my datasets through the EDA API',
      icon: gaugeIcon,
      execute: () => {
        if (!runner || runner.isDisposed) {
          const content = new RunnerPanel({ model, rendermime, editorServices });
          runner = new MainAreaWidget({ content });
          runner.id = 'eda-runner';
          runner.title.label = 'EDA Runner';
          runner.title.icon = gaugeIcon;
          runner.title.closable = true;
        }
        if (!runner.isAttached) {
          shell.add(runner, 'main');
        }
        shell.activateById(runner.id);
        return runner;
      }
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Resource Monitor',
      execute: () => model.refresh()
    });
    for (const command of [CommandIDs.openMonitor, CommandIDs.openRunner, CommandIDs.refresh]) {
      palette?.addItem({ command, category });
    }

    if (launcher) {
      commands.addCommand(CommandIDs.welcome, {
        label: () => welcomeLabel(model),
        caption: 'Open the Resource Monitor: your budget, kernels and limits',
        icon: gaugeIcon,
        execute: () => shell.activateById(MONITOR_ID)
      });
      model.changed.connect(() => commands.notifyCommandChanged(CommandIDs.welcome));
      launcher.add({ command: CommandIDs.welcome, category: 'EDA Gateway', rank: 0 });
    }

    if (statusBar) {
      const item = new StatusItem(model, () => void commands.execute(CommandIDs.openMonitor));
      statusBar.registerStatusItem('eda-gateway:status', {
        item,
        align: 'left',
        rank: 50,
        isActive: () => true
      });
    }
  }
};

/** Memory and CPU of each kernel: the notebook toolbar and JupyterLab's Running panel. */
const kernelUsagePlugin: JupyterFrontEndPlugin<void> = {
  id: 'eda-gateway:kernel-usage',
  description: "Each kernel's memory and CPU against its limits, in the notebook toolbar and the Running panel.",
  autoStart: true,
  requires: [IResourceModel],
  optional: [IRunningSessionManagers],
  activate: (app: JupyterFrontEnd, model: ResourceModel, running: IRunningSessionManagers | null): void => {
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const item = new KernelUsageItem(model, () => panel.sessionContext.session?.kernel?.id);
        panel.sessionContext.kernelChanged.connect(() => item.update());
        panel.toolbar.insertItem(10, 'eda-kernel-usage', item);
        return item;
      }
    });
    running?.add(
      new KernelUsageSection(
        model,
        app.serviceManager.sessions,
        kernelId => app.serviceManager.kernels.shutdown(kernelId),
        () => gaugeIcon
      )
    );
  }
};

/** Cells run through the pre-check (precheck.ts), which hands them to JupyterLab's own runCell. */
const cellExecutorPlugin: JupyterFrontEndPlugin<INotebookCellExecutor> = {
  id: 'eda-gateway:cell-executor',
  description: 'Refuses a cell at once while the budget is known to be spent; the server still decides.',
  autoStart: true,
  provides: INotebookCellExecutor,
  activate: (): INotebookCellExecutor => precheckedExecutor
};

export default [modelPlugin, uiPlugin, adminPlugin, kernelUsagePlugin, cellExecutorPlugin];
