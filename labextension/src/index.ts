/**
 * Wiring only: the widget plugin registers the progress model and view with the widget
 * manager; the main plugin adds the commands and the status-bar item.
 */

import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { addCommands } from './commands';
import { ProgressModel } from './model';
import { runs } from './runs';
import { RunStatus } from './statusbar';
import {
  CommandIDs,
  DEFAULT_GRID_THRESHOLD,
  MODULE_NAME,
  MODULE_VERSION,
  PLUGIN_ID,
  WIDGETS_PLUGIN_ID
} from './tokens';
import { ProgressView } from './view';

const widgetsPlugin: JupyterFrontEndPlugin<void> = {
  id: WIDGETS_PLUGIN_ID,
  description: 'Registers the jupyter_par progress widget with the widget manager.',
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  activate: (_app: JupyterFrontEnd, registry: IJupyterWidgetRegistry): void => {
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: { ProgressModel, ProgressView }
    });
  }
};

const mainPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Status-bar item and commands for running jupyter_par runs.',
  autoStart: true,
  optional: [IStatusBar, INotebookTracker, ICommandPalette, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    tracker: INotebookTracker | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null
  ): void => {
    addCommands(app, tracker, palette);

    let item: RunStatus | null = null;
    if (statusBar) {
      item = new RunStatus({
        registry: runs,
        tracker,
        onClick: () => void app.commands.execute(CommandIDs.showRunning)
      });
      const status = item;
      statusBar.registerStatusItem(PLUGIN_ID, {
        item: status,
        align: 'left',
        rank: 4,
        isActive: () => status.isActive,
        activeStateChanged: status.activeStateChanged
      });
    }

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        const threshold = settings.get('gridThreshold').composite as number;
        ProgressView.gridThreshold = threshold > 0 ? threshold : DEFAULT_GRID_THRESHOLD;
        if (item) {
          item.enabled = settings.get('showStatusBar').composite as boolean;
        }
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => console.error(`${PLUGIN_ID}: could not load settings`, reason));
    }
  }
};

export default [widgetsPlugin, mainPlugin];
