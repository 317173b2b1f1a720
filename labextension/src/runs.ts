/**
 * The runs this page shows, shared by the views, the status bar and the commands.
 *
 * The kernel's model is the standard `DOMWidgetModel` (so front ends without this extension
 * create it without error); a model becomes known here when one of its views renders, and
 * is forgotten when it closes. A model counts as running while its `overall.state` is
 * "running" and its comm is live, so a run restored from a saved notebook never does.
 */

import type { WidgetModel, WidgetView } from '@jupyter-widgets/base';
import type { Kernel } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { CANCEL_MESSAGE, ILogRecord, IOverallRecord, IWorkerRecord } from './tokens';

const EMPTY_OVERALL: IOverallRecord = {
  done: 0,
  total: null,
  percent: 0,
  elapsed: 0,
  eta: null,
  state: 'running',
  status: 'running',
  message: null,
  label: '',
  unit: 'rows',
  partitions_done: 0,
  partitions_total: null,
  cancel: 'none'
};

/** The `overall` record of `model`, with defaults for what an older kernel did not send. */
export function overallOf(model: WidgetModel): IOverallRecord {
  return { ...EMPTY_OVERALL, ...(model.get('overall') as Partial<IOverallRecord> | undefined) };
}

/** The `workers` records of `model`. */
export function workersOf(model: WidgetModel): IWorkerRecord[] {
  return (model.get('workers') as IWorkerRecord[] | undefined) ?? [];
}

/** What the run's partitions printed lately (empty once the run has ended). */
export function logOf(model: WidgetModel): ILogRecord[] {
  return (model.get('log') as ILogRecord[] | undefined) ?? [];
}

/** Whether the kernel side can still update the run. */
export function isRunning(model: WidgetModel): boolean {
  return model.comm_live && overallOf(model).state === 'running';
}

/** The kernel connection the model lives in (the widget manager's). */
export function kernelOf(model: WidgetModel): Kernel.IKernelConnection | null {
  const manager = model.widget_manager as unknown as { kernel?: Kernel.IKernelConnection | null };
  return manager.kernel ?? null;
}

/**
 * Stop the run of `model`. A run that holds its cell is stopped by interrupting the kernel
 * (a comm message would wait until the cell ends); a background run gets the cancel message.
 * Returns whether anything was asked.
 */
export async function cancelRun(model: WidgetModel): Promise<boolean> {
  const overall = overallOf(model);
  if (!isRunning(model)) {
    return false;
  }
  if (overall.cancel === 'interrupt') {
    // Only while the run says it is running (checked above): the kernel publishes the
    // final state before the cell ends, so an interrupt never lands in a later cell. The
    // kernel's own busy/idle status cannot tell: messages on other channels (a widget's
    // comm, kernel info) report "idle" while the cell still runs.
    const kernel = kernelOf(model);
    if (!kernel) {
      return false;
    }
    await kernel.interrupt();
    return true;
  }
  if (overall.cancel === 'message') {
    model.send(CANCEL_MESSAGE, {});
    return true;
  }
  return false;
}

export class RunRegistry {
  /** Emitted when a run starts, ends or closes. */
  get runningChanged(): ISignal<this, void> {
    return this._runningChanged;
  }

  /** Emitted when a running model's progress changes (up to ~10 times a second). */
  get progress(): ISignal<this, WidgetModel> {
    return this._progress;
  }

  /** Running models, oldest first. */
  get running(): ReadonlyArray<WidgetModel> {
    return [...this._running];
  }

  /** A number that names `model` in command arguments (the runs menu). */
  idOf(model: WidgetModel): number {
    let id = this._ids.get(model);
    if (id === undefined) {
      id = ++this._lastId;
      this._ids.set(model, id);
    }
    return id;
  }

  /** The running model named `id`, if it is still running. */
  byId(id: number): WidgetModel | null {
    return this.running.find(model => this._ids.get(model) === id) ?? null;
  }

  /** The DOM nodes of the rendered views of `model`. */
  viewNodes(model: WidgetModel): HTMLElement[] {
    return [...(this._views.get(model) ?? [])].map(view => view.el);
  }

  /** A view of `model` rendered (`attached`) or was removed. */
  attachView(view: WidgetView, attached: boolean): void {
    const model = view.model;
    let views = this._views.get(model);
    if (attached) {
      if (!views) {
        views = new Set();
        this._views.set(model, views);
        const onChange = (): void => this.update(model);
        this._listeners.set(model, onChange);
        model.on('change:overall change:workers comm_live_update', onChange);
        model.once('destroy', () => this._forget(model));
      }
      views.add(view);
      this.update(model);
    } else {
      views?.delete(view);
    }
  }

  /** Re-read one model's state. */
  update(model: WidgetModel): void {
    const running = isRunning(model);
    const was = this._running.has(model);
    if (running && !was) {
      this._running.add(model);
      this._runningChanged.emit();
    } else if (!running && was) {
      this._running.delete(model);
      this._runningChanged.emit();
    } else if (running) {
      this._progress.emit(model);
    }
  }

  private _forget(model: WidgetModel): void {
    model.off(null, this._listeners.get(model));
    this._listeners.delete(model);
    this._views.delete(model);
    if (this._running.delete(model)) {
      this._runningChanged.emit();
    }
  }

  private _running = new Set<WidgetModel>();
  private _views = new Map<WidgetModel, Set<WidgetView>>();
  private _listeners = new Map<WidgetModel, () => void>();
  private _ids = new WeakMap<WidgetModel, number>();
  private _lastId = 0;
  private _runningChanged = new Signal<this, void>(this);
  private _progress = new Signal<this, WidgetModel>(this);
}

/** The one registry of this page; the views, the status bar and the commands share it. */
export const runs = new RunRegistry();
