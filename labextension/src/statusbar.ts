/**
 * The status-bar item ("parallel 63% · 8 workers") and the lookup of the run that belongs to
 * the active notebook. Clicking the item opens the list of runs of every open kernel (show
 * or cancel each); it never moves the keyboard focus, so the notebook keeps its mode.
 */

import type { WidgetModel } from '@jupyter-widgets/base';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { statusText } from './format';
import { RunRegistry, kernelOf, overallOf, workersOf } from './runs';

/**
 * The running model that belongs to `panel`: one of its views is inside the notebook, or it
 * lives in the notebook's kernel. Without a notebook tracker, the newest running model.
 */
export function runningModelFor(
  registry: RunRegistry,
  panel: NotebookPanel | null,
  hasTracker: boolean
): WidgetModel | null {
  const running = registry.running;
  if (!hasTracker) {
    return running.length > 0 ? running[running.length - 1] : null;
  }
  if (!panel) {
    return null;
  }
  const kernelId = panel.sessionContext.session?.kernel?.id ?? null;
  for (let i = running.length - 1; i >= 0; i--) {
    const model = running[i];
    if (registry.viewNodes(model).some(node => panel.node.contains(node))) {
      return model;
    }
    if (kernelId !== null && kernelOf(model)?.id === kernelId) {
      return model;
    }
  }
  return null;
}

/** The notebook panel and node that show `model`, preferring `preferred`. */
export function findModelView(
  registry: RunRegistry,
  model: WidgetModel,
  tracker: INotebookTracker | null,
  preferred: NotebookPanel | null
): { panel: NotebookPanel | null; node: HTMLElement | null } {
  const nodes = registry.viewNodes(model).filter(node => node.isConnected);
  const panels: NotebookPanel[] = [];
  if (preferred) {
    panels.push(preferred);
  }
  tracker?.forEach(panel => {
    if (panel !== preferred) {
      panels.push(panel);
    }
  });
  for (const panel of panels) {
    const node = nodes.find(n => panel.node.contains(n));
    if (node) {
      return { panel, node };
    }
  }
  return { panel: null, node: nodes[0] ?? null };
}

/**
 * A status-bar widget: the active notebook's run, else how many runs are going elsewhere;
 * hidden when no run is going anywhere.
 */
export class RunStatus extends Widget {
  constructor(options: RunStatus.IOptions) {
    super();
    this._registry = options.registry;
    this._tracker = options.tracker;
    this._onClick = options.onClick;
    this.addClass('jp-par-statusbar');
    this.node.title = 'Parallel runs: click to list them, show one or cancel it';
    // A click must not take the focus from the notebook: losing it and getting it back
    // would move the notebook from command to edit mode.
    this.node.addEventListener('mousedown', this._keepFocus);
    this.node.addEventListener('click', this._handleClick);
    this._registry.runningChanged.connect(this.refresh, this);
    this._registry.progress.connect(this.refresh, this);
    this._tracker?.currentChanged.connect(this.refresh, this);
    this.refresh();
  }

  /** Emitted when the item should be shown or hidden. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** Whether a run is going anywhere on the page. */
  get isActive(): boolean {
    return this._enabled && this._registry.running.length > 0;
  }

  /** Turn the item off (or back on) from the settings. */
  set enabled(value: boolean) {
    this._enabled = value;
    this.refresh();
  }

  /** The running model of the active notebook, or null. */
  get model(): WidgetModel | null {
    return this._model;
  }

  refresh(): void {
    const wasActive = this._wasActive;
    this._model = runningModelFor(
      this._registry,
      this._tracker?.currentWidget ?? null,
      this._tracker !== null
    );
    const count = this._registry.running.length;
    let text = '';
    if (this._model) {
      text = statusText(overallOf(this._model), workersOf(this._model).length);
      if (count > 1) {
        text += ` (+${count - 1} more)`;
      }
    } else if (count > 0) {
      text = `parallel · ${count} ${count === 1 ? 'run' : 'runs'} in other notebooks`;
    }
    if (this.node.textContent !== text) {
      this.node.textContent = text;
    }
    this._wasActive = this.isActive;
    if (wasActive !== this._wasActive) {
      this._activeStateChanged.emit();
    }
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.node.removeEventListener('mousedown', this._keepFocus);
    this.node.removeEventListener('click', this._handleClick);
    Signal.clearData(this);
    super.dispose();
  }

  private _keepFocus = (event: MouseEvent): void => event.preventDefault();

  private _handleClick = (event: MouseEvent): void => {
    const box = this.node.getBoundingClientRect();
    this._onClick(box.left, box.top);
    event.stopPropagation();
  };

  private _registry: RunRegistry;
  private _tracker: INotebookTracker | null;
  private _onClick: (x: number, y: number) => void;
  private _model: WidgetModel | null = null;
  private _enabled = true;
  private _wasActive = false;
  private _activeStateChanged = new Signal<this, void>(this);
}

export namespace RunStatus {
  export interface IOptions {
    registry: RunRegistry;
    tracker: INotebookTracker | null;
    /** What a click does (open the runs menu at the item's top-left corner). */
    onClick: (x: number, y: number) => void;
  }
}
