/**
 * The commands: cancel the active notebook's run, and show the cell that draws it.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import type { ProgressModel } from './model';
import { runs } from './runs';
import { findModelView, runningModelFor } from './statusbar';
import { CommandIDs } from './tokens';

/** The run the commands act on: the active notebook's, else the newest anywhere. */
function targetModel(tracker: INotebookTracker | null): ProgressModel | null {
  return (
    runningModelFor(runs, tracker?.currentWidget ?? null, tracker !== null) ??
    runningModelFor(runs, null, false)
  );
}

export function addCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  palette: ICommandPalette | null
): void {
  app.commands.addCommand(CommandIDs.cancel, {
    label: 'Cancel Parallel Run',
    caption: 'Stop all workers of the running jupyter_par run',
    isEnabled: () => targetModel(tracker) !== null,
    execute: () => {
      const model = targetModel(tracker);
      model?.cancel();
      return model !== null;
    }
  });

  app.commands.addCommand(CommandIDs.showRunning, {
    label: 'Show Running Parallel Cell',
    caption: 'Scroll to the cell whose parallel run is in progress',
    isEnabled: () => targetModel(tracker) !== null,
    execute: async () => {
      const model = targetModel(tracker);
      if (!model) {
        return false;
      }
      const { panel, node } = findModelView(model, tracker, tracker?.currentWidget ?? null);
      if (panel) {
        app.shell.activateById(panel.id);
        const index = panel.content.widgets.findIndex(cell => node && cell.node.contains(node));
        if (index >= 0) {
          panel.content.activeCellIndex = index;
          await panel.content.scrollToCell(panel.content.widgets[index], 'center');
        }
      }
      node?.scrollIntoView({ block: 'center' });
      return node !== null;
    }
  });

  // Enabled state follows runs starting and ending (not every progress tick: re-rendering
  // menus ten times a second would cost more than the whole progress view).
  runs.runningChanged.connect(() => {
    app.commands.notifyCommandChanged(CommandIDs.cancel);
    app.commands.notifyCommandChanged(CommandIDs.showRunning);
  });

  if (palette) {
    const category = 'Parallel';
    palette.addItem({ command: CommandIDs.cancel, category });
    palette.addItem({ command: CommandIDs.showRunning, category });
  }
}
