/**
 * The commands: cancel a run, show the cell that draws it, and list the runs of every open
 * kernel (the status-bar item's menu).
 *
 * `cancel` and `show-running` act on the run given as `{ run: id }`, else on the active
 * notebook's run, else on the newest run anywhere.
 */

import type { WidgetModel } from '@jupyter-widgets/base';
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Menu } from '@lumino/widgets';

import { percentText } from './format';
import { cancelRun, overallOf, runs } from './runs';
import { findModelView, runningModelFor } from './statusbar';
import { CommandIDs } from './tokens';

/** The run a command acts on. */
function targetModel(
  tracker: INotebookTracker | null,
  args: ReadonlyPartialJSONObject
): WidgetModel | null {
  if (typeof args.run === 'number') {
    return runs.byId(args.run);
  }
  return (
    runningModelFor(runs, tracker?.currentWidget ?? null, tracker !== null) ??
    runningModelFor(runs, null, false)
  );
}

/** "score 63% · analysis.ipynb": one run, as the runs menu names it. */
function describe(model: WidgetModel, tracker: INotebookTracker | null): string {
  const overall = overallOf(model);
  const { panel } = findModelView(runs, model, tracker, null);
  const where = panel ? ` · ${panel.context.localPath}` : '';
  return `${overall.label || 'parallel'} ${percentText(overall.percent)}${where}`;
}

export function addCommands(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  palette: ICommandPalette | null
): void {
  app.commands.addCommand(CommandIDs.cancel, {
    label: args =>
      typeof args.run === 'number'
        ? `Cancel ${describeId(args.run as number, tracker)}`
        : 'Cancel Parallel Run',
    caption: 'Stop all workers of the running jupyter_par run; nothing is stored',
    isEnabled: args => targetModel(tracker, args) !== null,
    execute: async args => {
      const model = targetModel(tracker, args);
      return model ? cancelRun(model) : false;
    }
  });

  app.commands.addCommand(CommandIDs.showRunning, {
    label: args =>
      typeof args.run === 'number'
        ? `Show ${describeId(args.run as number, tracker)}`
        : 'Show Running Parallel Cell',
    caption: 'Scroll to the cell whose parallel run is in progress',
    isEnabled: args => targetModel(tracker, args) !== null,
    execute: args => {
      const model = targetModel(tracker, args);
      if (!model) {
        return false;
      }
      const { panel, node } = findModelView(runs, model, tracker, tracker?.currentWidget ?? null);
      if (panel) {
        app.shell.activateById(panel.id);
        const index = panel.content.widgets.findIndex(cell => node && cell.node.contains(node));
        if (index >= 0) {
          // Not scrollToCell: it activates the cell, which focuses its editor and moves the
          // notebook from command to edit mode.
          panel.content.activeCellIndex = index;
        }
      }
      node?.scrollIntoView({ block: 'center' });
      return node !== null;
    }
  });

  app.commands.addCommand(CommandIDs.listRuns, {
    label: 'List Parallel Runs',
    caption: 'The jupyter_par runs of every open kernel: show or cancel each',
    execute: args => {
      const menu = new Menu({ commands: app.commands });
      menu.addClass('jp-par-runs-menu');
      const running = runs.running;
      running.forEach((model, i) => {
        const run = runs.idOf(model);
        if (i > 0) {
          menu.addItem({ type: 'separator' });
        }
        menu.addItem({ command: CommandIDs.showRunning, args: { run } });
        menu.addItem({ command: CommandIDs.cancel, args: { run } });
      });
      if (running.length === 0) {
        return false;
      }
      const x = typeof args.x === 'number' ? args.x : window.innerWidth / 2;
      const y = typeof args.y === 'number' ? args.y : window.innerHeight / 2;
      menu.aboutToClose.connect(() => setTimeout(() => menu.dispose(), 0));
      menu.open(x, y);
      return true;
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
    palette.addItem({ command: CommandIDs.listRuns, category });
  }

  function describeId(id: number, tracker: INotebookTracker | null): string {
    const model = runs.byId(id);
    return model ? describe(model, tracker) : 'parallel run (ended)';
  }
}
