/**
 * The registry of runs in progress, shared by the widget model and the status bar.
 *
 * Models add themselves when their `overall.state` is "running" and their comm is live, and
 * leave when the run ends or the model closes. Widgets restored from a saved notebook have no
 * live comm, so a run saved mid-way never shows as running again.
 */

import { ISignal, Signal } from '@lumino/signaling';

import type { ProgressModel } from './model';

export class RunRegistry {
  /** Emitted when a run starts or ends. */
  get runningChanged(): ISignal<this, void> {
    return this._runningChanged;
  }

  /** Emitted when a running model's progress changes (up to ~10 times a second). */
  get progress(): ISignal<this, ProgressModel> {
    return this._progress;
  }

  /** Running models, oldest first. */
  get running(): ReadonlyArray<ProgressModel> {
    return [...this._running];
  }

  /** Re-read one model's state; call on every progress change. */
  update(model: ProgressModel): void {
    const isRunning = model.isRunning;
    const wasRunning = this._running.has(model);
    if (isRunning && !wasRunning) {
      this._running.add(model);
      this._runningChanged.emit();
    } else if (!isRunning && wasRunning) {
      this._running.delete(model);
      this._runningChanged.emit();
    } else if (isRunning) {
      this._progress.emit(model);
    }
  }

  /** Forget a model that closed. */
  remove(model: ProgressModel): void {
    if (this._running.delete(model)) {
      this._runningChanged.emit();
    }
  }

  private _running = new Set<ProgressModel>();
  private _runningChanged = new Signal<this, void>(this);
  private _progress = new Signal<this, ProgressModel>(this);
}

/** The one registry of this page; the model module and the status bar share it. */
export const runs = new RunRegistry();
