// SPDX-License-Identifier: GPL-2.0-only
/**
 * hmm-tests.c TEST_F_TIMEOUT(hmm, benchmark_thp_migration, 120): THP vs
 * base-page migration round trips through the dmirror device, with the
 * kernel test's table output. Times are the wall-clock time of the model
 * (gettimeofday() in the C test), so the numbers measure the simulator;
 * like the kernel's test there are no pass/fail thresholds, only the
 * ASSERT_EQ(run_migration_benchmark(...), 0) of each run.
 */
import { ASSERT_EQ, printLine } from './harness.js';
import {
  Libc, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, NULL, PAGE_SIZE, PROT_READ,
  PROT_WRITE, read_pmd_pagesize,
} from './libc.js';
import {
  type HmmBuffer, type HmmEnv, type HmmSelf, type HmmVariant, TWOMEG, hmm_buffer_free, hmm_migrate_dev_to_sys,
  hmm_migrate_sys_to_dev,
} from './hmm_common.js';

const INT_MAX = 0x7fffffff;

export interface BenchmarkResults {
  sys_to_dev_time: number;
  dev_to_sys_time: number;
  throughput_s2d: number;
  throughput_d2s: number;
}

/**
 * get_time_ms(): the wall clock, or, when the machine has a simulated
 * clock (hmmsim model dmirror-benchmark --profile), simulated time.
 */
function get_time_ms(lc: Libc): number {
  const clock = lc.p.system.kernel.clock;
  return clock !== null ? clock.now() / 1e6 : performance.now();
}

/** hmm_buffer_alloc(size): the buffer with a 0xFF-filled mirror. */
export function hmm_buffer_alloc(lc: Libc, size: number): HmmBuffer {
  const buffer: HmmBuffer = { self: lc.malloc(48), ptr: NULL, mirror: NULL, size: 0, fd: -1, cpages: 0, faults: 0 };

  buffer.fd = -1;
  buffer.size = size;
  buffer.mirror = lc.malloc(size);
  lc.memset(buffer.mirror, 0xff, size);
  return buffer;
}

/**
 * `for (i = 0; i < buffer_size / sizeof(int); i++) ptr[i] = i & 0xFF;`,
 * stored through the CPU 2 MiB at a time. The values repeat every 256
 * ints and each 2 MiB step starts at a multiple of 256, so one staging
 * array holds every step's values: it is filled once and stored again.
 */
function init_buffer(lc: Libc, ptr: number, buffer_size: number): void {
  const chunk = new Int32Array(Math.min(buffer_size, TWOMEG) / 4);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
  for (let off = 0; off < buffer_size; off += chunk.byteLength) {
    const n = Math.min(chunk.length, (buffer_size - off) / 4);
    lc.writeI32(ptr + off, n === chunk.length ? chunk : chunk.subarray(0, n));
  }
}

/** C printf("%.Nf") */
function f(v: number, digits: number): string {
  if (Number.isNaN(v)) return '-nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v.toFixed(digits);
}

export function print_benchmark_results(test_name: string, buffer_size: number, thp: BenchmarkResults, regular: BenchmarkResults): void {
  const s2d_improvement = ((regular.sys_to_dev_time - thp.sys_to_dev_time) / regular.sys_to_dev_time) * 100.0;
  const d2s_improvement = ((regular.dev_to_sys_time - thp.dev_to_sys_time) / regular.dev_to_sys_time) * 100.0;
  const throughput_s2d_improvement = ((thp.throughput_s2d - regular.throughput_s2d) / regular.throughput_s2d) * 100.0;
  const throughput_d2s_improvement = ((thp.throughput_d2s - regular.throughput_d2s) / regular.throughput_d2s) * 100.0;

  printLine('');
  printLine(`=== ${test_name} (${f(buffer_size / (1024.0 * 1024.0), 1)} MB) ===`);
  printLine('                     | With THP        | Without THP     | Improvement');
  printLine('---------------------------------------------------------------------');
  printLine(`Sys->Dev Migration   | ${f(thp.sys_to_dev_time, 3)} ms        | ${f(regular.sys_to_dev_time, 3)} ms        | ${f(s2d_improvement, 1)}%`);
  printLine(`Dev->Sys Migration   | ${f(thp.dev_to_sys_time, 3)} ms        | ${f(regular.dev_to_sys_time, 3)} ms        | ${f(d2s_improvement, 1)}%`);
  printLine(`S->D Throughput      | ${f(thp.throughput_s2d, 2)} GB/s      | ${f(regular.throughput_s2d, 2)} GB/s      | ${f(throughput_s2d_improvement, 1)}%`);
  printLine(`D->S Throughput      | ${f(thp.throughput_d2s, 2)} GB/s      | ${f(regular.throughput_d2s, 2)} GB/s      | ${f(throughput_d2s_improvement, 1)}%`);
}

/**
 * Run a single migration benchmark
 * fd: file descriptor for hmm device
 * use_thp: whether to use THP
 * buffer_size: size of buffer to allocate
 * iterations: number of iterations
 * results: where to store results
 */
export function run_migration_benchmark(lc: Libc, fd: number, use_thp: number, buffer_size: number, iterations: number, results: BenchmarkResults): number {
  const npages = Math.floor(buffer_size / PAGE_SIZE);
  let start: number;
  let end: number;
  let s2d_total = 0;
  let d2s_total = 0;
  let ret: number;

  const buffer = hmm_buffer_alloc(lc, buffer_size);

  /* Map memory */
  buffer.ptr = lc.mmap(NULL, buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (buffer.ptr === MAP_FAILED) return -1;

  /* Apply THP hint if requested */
  if (use_thp) ret = lc.madvise(buffer.ptr, buffer_size, MADV_HUGEPAGE);
  else ret = lc.madvise(buffer.ptr, buffer_size, MADV_NOHUGEPAGE);

  if (ret) return ret;

  /* Initialize memory to make sure pages are allocated */
  init_buffer(lc, buffer.ptr, buffer_size);

  /* Warmup iteration */
  ret = hmm_migrate_sys_to_dev(lc, fd, buffer, npages);
  if (ret) return ret;

  ret = hmm_migrate_dev_to_sys(lc, fd, buffer, npages);
  if (ret) return ret;

  /* Benchmark iterations */
  for (let i = 0; i < iterations; i++) {
    /* System to device migration */
    start = get_time_ms(lc);

    ret = hmm_migrate_sys_to_dev(lc, fd, buffer, npages);
    if (ret) return ret;

    end = get_time_ms(lc);
    s2d_total += end - start;

    /* Device to system migration */
    start = get_time_ms(lc);

    ret = hmm_migrate_dev_to_sys(lc, fd, buffer, npages);
    if (ret) return ret;

    end = get_time_ms(lc);
    d2s_total += end - start;
  }

  /* Calculate average times and throughput */
  results.sys_to_dev_time = s2d_total / iterations;
  results.dev_to_sys_time = d2s_total / iterations;
  results.throughput_s2d = buffer_size / (1024.0 * 1024.0 * 1024.0) / (results.sys_to_dev_time / 1000.0);
  results.throughput_d2s = buffer_size / (1024.0 * 1024.0 * 1024.0) / (results.dev_to_sys_time / 1000.0);

  /* Cleanup */
  hmm_buffer_free(lc, buffer);
  return 0;
}

/** The body of TEST_F_TIMEOUT(hmm, benchmark_thp_migration, 120). */
export function benchmark_thp_migration(self: HmmSelf, _variant: HmmVariant, { lc }: HmmEnv): void {
  const thp_results: BenchmarkResults = { sys_to_dev_time: 0, dev_to_sys_time: 0, throughput_s2d: 0, throughput_d2s: 0 };
  const regular_results: BenchmarkResults = { sys_to_dev_time: 0, dev_to_sys_time: 0, throughput_s2d: 0, throughput_d2s: 0 };
  let thp_size = read_pmd_pagesize(lc);
  const iterations = 5;

  if (!thp_size) thp_size = TWOMEG;

  printLine('');
  printLine('HMM THP Migration Benchmark');
  printLine('---------------------------');
  printLine(`System page size: ${PAGE_SIZE} bytes`);

  /* Test different buffer sizes */
  const test_sizes = [
    thp_size / 4 /* quarter THP */,
    thp_size / 2 /* half THP */,
    thp_size /* single THP */,
    thp_size * 2 /* two THPs */,
    thp_size * 4 /* four THPs */,
    thp_size * 8 /* eight THPs */,
    thp_size * 128 /* one twenty eight THPs */,
  ];

  const test_names = [
    'Small Buffer',
    'Half THP Size',
    'Single THP Size',
    'Two THP Size',
    'Four THP Size',
    'Eight THP Size',
    'One twenty eight THP Size',
  ];

  const num_tests = test_sizes.length;

  /* Run all tests */
  for (let i = 0; i < num_tests; i++) {
    /* Skip test sizes exceeding INT_MAX to avoid overflow */
    if (test_sizes[i] > INT_MAX) break;

    /* Test with THP */
    ASSERT_EQ(run_migration_benchmark(lc, self.fd, 1, test_sizes[i], iterations, thp_results), 0);

    /* Test without THP */
    ASSERT_EQ(run_migration_benchmark(lc, self.fd, 0, test_sizes[i], iterations, regular_results), 0);

    /* Print results */
    print_benchmark_results(test_names[i], test_sizes[i], thp_results, regular_results);
  }
}
