/**
 * Wiring only: the widget plugin registers the progress view with the widget manager and
 * the progress renderer with each notebook; the main plugin adds the commands and the
 * status-bar item.
 */

import { DOMWidgetModel, IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { addCommands } from './commands';
import { addProgressRenderer } from './renderer';
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

/**
 * The model class of widgets saved before the model became the standard DOMWidgetModel:
 * notebooks that hold such state still restore.
 */
class ProgressModel extends DOMWidgetModel {}

const widgetsPlugin: JupyterFrontEndPlugin<void> = {
  id: WIDGETS_PLUGIN_ID,
  description: 'Registers the jupyter_par progress view and its display type.',
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  optional: [INotebookTracker],
  activate: (
    _app: JupyterFrontEnd,
    registry: IJupyterWidgetRegistry,
    tracker: INotebookTracker | null
  ): void => {
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: { ProgressModel, ProgressView }
    });
    tracker?.forEach(panel => addProgressRenderer(panel.content.rendermime));
    tracker?.widgetAdded.connect((_, panel) => addProgressRenderer(panel.content.rendermime));
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
        onClick: (x, y) => void app.commands.execute(CommandIDs.listRuns, { x, y })
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
