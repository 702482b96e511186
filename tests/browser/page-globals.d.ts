// What the tests' pages put on window for page.evaluate: the npm package (tests/package) and the
// benchmark page's functions (bench/page/bench.js).
interface Window {
  cutout: typeof import('../../www/npm/index.js') & { element?: unknown };
  bench: Record<string, (...args: any[]) => Promise<any>>;
  /** The editor test's sum of layout shifts without recent input (CLS). */
  layoutShift: number;
}
