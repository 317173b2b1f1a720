/**
 * The status-bar item ("parallel 63% · 8 workers") and the lookup of the run that belongs to
 * the active notebook.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { statusText } from './format';
import type { ProgressModel } from './model';
import { RunRegistry } from './runs';

/**
 * The running model that belongs to `panel`: one of its views is inside the notebook, or it
 * lives in the notebook's kernel. Without a notebook tracker, the newest running model.
 */
export function runningModelFor(
  registry: RunRegistry,
  panel: NotebookPanel | null,
  hasTracker: boolean
): ProgressModel | null {
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
    if (model.viewNodes.some(node => panel.node.contains(node))) {
      return model;
    }
    if (kernelId !== null && model.kernelId === kernelId) {
      return model;
    }
  }
  return null;
}

/** The notebook panel and node that show `model`, preferring `preferred`. */
export function findModelView(
  model: ProgressModel,
  tracker: INotebookTracker | null,
  preferred: NotebookPanel | null
): { panel: NotebookPanel | null; node: HTMLElement | null } {
  const nodes = model.viewNodes.filter(node => node.isConnected);
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

/** A status-bar widget that shows the active notebook's run and hides itself otherwise. */
export class RunStatus extends Widget {
  constructor(options: RunStatus.IOptions) {
    super();
    this._registry = options.registry;
    this._tracker = options.tracker;
    this._onClick = options.onClick;
    this.addClass('jp-par-statusbar');
    this.node.title = 'Parallel run in progress: click to show it';
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

  /** Whether a run is going in the active notebook. */
  get isActive(): boolean {
    return this._enabled && this._model !== null;
  }

  /** Turn the item off (or back on) from the settings. */
  set enabled(value: boolean) {
    this._enabled = value;
    this.refresh();
  }

  /** The running model of the active notebook, or null. */
  get model(): ProgressModel | null {
    return this._model;
  }

  refresh(): void {
    const wasActive = this.isActive;
    this._model = runningModelFor(
      this._registry,
      this._tracker?.currentWidget ?? null,
      this._tracker !== null
    );
    const text = this._model ? statusText(this._model.overall, this._model.workers.length) : '';
    if (this.node.textContent !== text) {
      this.node.textContent = text;
    }
    if (wasActive !== this.isActive) {
      this._activeStateChanged.emit();
    }
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.node.removeEventListener('click', this._handleClick);
    Signal.clearData(this);
    super.dispose();
  }

  private _handleClick = (): void => this._onClick();

  private _registry: RunRegistry;
  private _tracker: INotebookTracker | null;
  private _onClick: () => void;
  private _model: ProgressModel | null = null;
  private _enabled = true;
  private _activeStateChanged = new Signal<this, void>(this);
}

export namespace RunStatus {
  export interface IOptions {
    registry: RunRegistry;
    tracker: INotebookTracker | null;
    /** What a click does (show the running cell). */
    onClick: () => void;
  }
}
