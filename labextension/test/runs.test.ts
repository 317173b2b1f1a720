import type { WidgetModel } from '@jupyter-widgets/base';
import { describe, expect, it, vi } from 'vitest';

import { cancelRun, isRunning, overallOf } from '../src/runs';
import type { CancelRoute } from '../src/tokens';

/** Just enough of a widget model for the run helpers. */
function fakeModel(state: string, cancel: CancelRoute, live = true) {
  const interrupt = vi.fn(async () => undefined);
  const send = vi.fn();
  const model = {
    comm_live: live,
    get: (key: string) => (key === 'overall' ? { state, cancel } : undefined),
    send,
    widget_manager: { kernel: { interrupt } }
  } as unknown as WidgetModel;
  return { model, interrupt, send };
}

describe('cancelRun', () => {
  it('interrupts the kernel for a run that holds its cell', async () => {
    const { model, interrupt, send } = fakeModel('running', 'interrupt');
    expect(await cancelRun(model)).toBe(true);
    expect(interrupt).toHaveBeenCalledOnce();
    expect(send).not.toHaveBeenCalled();
  });

  it('sends the cancel message to a run in a background thread', async () => {
    const { model, interrupt, send } = fakeModel('running', 'message');
    expect(await cancelRun(model)).toBe(true);
    expect(send).toHaveBeenCalledWith({ event: 'cancel' }, {});
    expect(interrupt).not.toHaveBeenCalled();
  });

  it('never interrupts once the run has ended: the kernel may be in another cell', async () => {
    for (const [state, live] of [
      ['done', true],
      ['cancelled', true],
      ['running', false]
    ] as const) {
      const { model, interrupt, send } = fakeModel(state, 'interrupt', live);
      expect(await cancelRun(model)).toBe(false);
      expect(interrupt).not.toHaveBeenCalled();
      expect(send).not.toHaveBeenCalled();
    }
  });

  it('does nothing for a run nothing can stop', async () => {
    const { model, interrupt, send } = fakeModel('running', 'none');
    expect(await cancelRun(model)).toBe(false);
    expect(interrupt).not.toHaveBeenCalled();
    expect(send).not.toHaveBeenCalled();
  });

  it('fills in what an older kernel did not send', () => {
    const { model } = fakeModel('running', 'interrupt');
    expect(overallOf(model).unit).toBe('rows');
    expect(isRunning(model)).toBe(true);
  });
});
