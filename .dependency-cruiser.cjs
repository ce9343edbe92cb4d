/**
 * dependency-cruiser rules for hmmsim (`npm run lint:deps`, run first by `npm test`).
 *
 * Layers, lowest first (nothing imports a layer above its own):
 *   src/kernel   the simulated kernel
 *   src/drivers  kernel modules (test_hmm, gup_test, testdrv)
 *   src/user     simulated user space
 *   tools        src/selftests, src/explore, src/bench, src/cli, src/fuzz,
 *                src/trace, src/report, src/index.ts, src/version.ts, scenarios/
 *                (src/explore is a library below scenarios/ and the other tools)
 * test/ and examples/ are consumers of everything and are not cruised.
 *
 * Runtime import cycles are forbidden everywhere. A cycle made only of
 * `import type` edges is erased by the compiler and allowed (like a C header
 * that only declares a struct).
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-runtime-cycle',
      severity: 'error',
      comment:
        'A runtime import cycle: module evaluation order then decides which binding is ' +
        'still undefined. Move the shared constants/types into a header-like module ' +
        '(e.g. src/kernel/mm/fault_types.ts) or the code where the kernel keeps it.',
      from: {},
      to: {
        circular: true,
        viaOnly: { dependencyTypesNot: ['type-only'] },
      },
    },
    {
      name: 'kernel-imports-upward',
      severity: 'error',
      comment: 'src/kernel is the lowest layer: it must not import drivers, user space or tools.',
      from: { path: '^src/kernel/' },
      to: { path: '^(src/(drivers|user|selftests|explore|bench|cli|fuzz|trace|report)/|src/index\\.ts$|scenarios/)' },
    },
    {
      name: 'drivers-import-upward',
      severity: 'error',
      comment: 'A driver uses only what a kernel module could: no user space or tools.',
      from: { path: '^src/drivers/' },
      to: { path: '^(src/(user|selftests|explore|bench|cli|fuzz|trace|report)/|src/index\\.ts$|scenarios/)' },
    },
    {
      name: 'user-imports-tools',
      severity: 'error',
      comment: 'Simulated user space must not import the tools built on top of it.',
      from: { path: '^src/user/' },
      to: { path: '^(src/(selftests|explore|bench|cli|fuzz|trace|report)/|src/index\\.ts$|scenarios/)' },
    },
    {
      name: 'explore-imports-scenarios',
      severity: 'error',
      comment:
        'The explorer (a library, package export ./explore) must not import the scenarios built on it; ' +
        'measuring the explorer on a scenario is a benchmark (src/bench). src/explore/index.ts is the ' +
        'package entry (./explore) and re-exports the scenarios for API users.',
      from: { path: '^src/explore/', pathNot: '^src/explore/index\\.ts$' },
      to: { path: '^(scenarios/|src/(bench|cli|selftests|fuzz|report)/)' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
