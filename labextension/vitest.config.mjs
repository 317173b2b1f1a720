// Unit tests of the pure modules (no DOM, no JupyterLab): `jlpm test`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { include: ['test/**/*.test.ts'], environment: 'node' }
});
