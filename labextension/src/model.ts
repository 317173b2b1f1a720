/**
 * The widget model: holds the `workers` and `overall` traits synced from the kernel.
 */

import { DOMWidgetModel, IBackboneModelOptions, WidgetView } from '@jupyter-widgets/base';
import type * as Backbone from 'backbone';

import { runs } from './runs';
import {
  CANCEL_MESSAGE,
  IOverallRecord,
  IWorkerRecord,
  MODULE_NAME,
  MODULE_VERSION
} from './tokens';

const EMPTY_OVERALL: IOverallRecord = {
  done: 0,
  total: null,
  percent: 0,
  elapsed: 0,
  eta: null,
  state: 'running',
  label: '',
  partitions_done: 0,
  partitions_total: null
};

export class ProgressModel extends DOMWidgetModel {
  override defaults(): Backbone.ObjectHash {
    return {
      ...super.defaults(),
      _model_name: 'ProgressModel',
      _view_name: 'ProgressView',
      _model_module: MODULE_NAME,
      _view_module: MODULE_NAME,
      _model_module_version: MODULE_VERSION,
      _view_module_version: MODULE_VERSION,
      workers: [],
      overall: { ...EMPTY_OVERALL }
    };
  }

  override initialize(attributes: Backbone.ObjectHash, options: IBackboneModelOptions): void {
    super.initialize(attributes, options);
    this.on('change:overall change:workers comm_live_update', () => runs.update(this));
    this.on('destroy', () => runs.remove(this));
    runs.update(this);
  }

  get overall(): IOverallRecord {
    return { ...EMPTY_OVERALL, ...(this.get('overall') as Partial<IOverallRecord>) };
  }

  get workers(): IWorkerRecord[] {
    return (this.get('workers') as IWorkerRecord[] | undefined) ?? [];
  }

  /** A run counts as going only while the kernel side can still update it. */
  get isRunning(): boolean {
    return this.comm_live && this.overall.state === 'running';
  }

  /** The id of the kernel this model lives in, where the widget manager exposes it. */
  get kernelId(): string | null {
    const manager = this.widget_manager as unknown as { kernel?: { id?: string } | null };
    return manager.kernel?.id ?? null;
  }

  /** The DOM nodes of this model's views that are currently rendered. */
  get viewNodes(): HTMLElement[] {
    return [...viewsOf(this)].map(view => view.el);
  }

  /** Called by a view when it renders and when it is removed. */
  attachView(view: WidgetView, attached: boolean): void {
    if (attached) {
      viewsOf(this).add(view);
    } else {
      viewsOf(this).delete(view);
    }
  }

  /** Ask the kernel side to cancel this run. */
  cancel(): void {
    this.send(CANCEL_MESSAGE);
  }

  static override serializers = { ...DOMWidgetModel.serializers };
}

/**
 * The rendered views of each model. Not a class field: Backbone's constructor calls
 * `initialize()` (which already asks for the views, through the run registry) before
 * class fields are assigned, so a field would still be undefined there.
 */
const VIEWS = new WeakMap<ProgressModel, Set<WidgetView>>();

function viewsOf(model: ProgressModel): Set<WidgetView> {
  let views = VIEWS.get(model);
  if (!views) {
    views = new Set();
    VIEWS.set(model, views);
  }
  return views;
}
