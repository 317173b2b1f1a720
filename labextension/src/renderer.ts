/**
 * The renderer of jupyter_par's own display type.
 *
 * The kernel shows a run as one display with two types: this extension's (naming the lab
 * widget's model) and the standard ipywidgets view of an HTML fallback. A front end without
 * this extension knows only the second and draws the fallback; here this renderer is the
 * richer choice and draws the lab widget's view, through the notebook's own widget renderer
 * (which holds the notebook's widget manager).
 */

import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Panel } from '@lumino/widgets';

import { MIME_TYPE, WIDGET_VIEW_MIME_TYPE } from './tokens';

/** What the kernel puts under `MIME_TYPE`. */
interface IProgressData {
  model_id: string;
  version?: string;
}

export class ProgressRenderer extends Panel implements IRenderMime.IRenderer {
  constructor(_options: IRenderMime.IRendererOptions, rendermime: IRenderMimeRegistry) {
    super();
    this._rendermime = rendermime;
    this.addClass('jp-par-renderer');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[MIME_TYPE] as IProgressData | undefined;
    const modelId = data?.model_id ?? '';
    if (modelId === this._modelId) {
      return; // the same run: its view updates itself
    }
    this._modelId = modelId;
    this._inner?.dispose();
    const inner = this._rendermime.createRenderer(WIDGET_VIEW_MIME_TYPE);
    this._inner = inner;
    this.addWidget(inner);
    const widgetData = { model_id: modelId, version_major: 2, version_minor: 0 };
    await inner.renderModel({
      trusted: model.trusted,
      data: { [WIDGET_VIEW_MIME_TYPE]: widgetData },
      metadata: {},
      setData: () => undefined
    });
  }

  private _rendermime: IRenderMimeRegistry;
  private _inner: IRenderMime.IRenderer | null = null;
  private _modelId: string | null = null;
}

/**
 * Teach one notebook's rendermime (the one its widget manager uses, Output widgets included)
 * to draw jupyter_par's display type ahead of the standard widget view.
 */
export function addProgressRenderer(rendermime: IRenderMimeRegistry): void {
  if (rendermime.getFactory(MIME_TYPE)) {
    return;
  }
  rendermime.addFactory(
    {
      safe: false,
      mimeTypes: [MIME_TYPE],
      createRenderer: options => new ProgressRenderer(options, rendermime)
    },
    -20 // ahead of the widget view's -10
  );
}
