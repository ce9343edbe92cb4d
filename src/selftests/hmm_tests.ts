// SPDX-License-Identifier: GPL-2.0-only
/**
 * tools/testing/selftests/mm/hmm-tests.c, ported to the model.
 *
 * "HMM stands for Heterogeneous Memory Management, it is a helper layer
 * inside the linux kernel to help device drivers mirror a process address
 * space in the device. [...] This framework's sole purpose is to exercise
 * various code paths inside the kernel to make sure that HMM performs as
 * expected and to flush out any bugs."
 *
 * Every TEST_F of the kernel's file is here, in the same order, with every
 * assertion. The C code reads and writes the test buffers element by
 * element (`ptr[i] = i`); the port does the same accesses in bulk
 * (Process.readI32 / writeI32 touch the same pages in the same order) and
 * then asserts element by element, so a failure names the first wrong index
 * exactly as the C test would. Where the bulk form would touch memory the C
 * loop does not (the hole of migrate_partial_unmap_fault), it is split.
 *
 * Each case runs on a fresh simulated machine (see harness.ts): FIXTURE
 * `hmm` opens /dev/hmm_dmirror0 (private) or /dev/hmm_dmirror2 (coherent),
 * `hmm2` opens 0+1 or 2+3.
 *
 * `// hmm-tests.c:N` next to a TEST_F is the line of the TEST_F in the
 * kernel source (torvalds/linux, the version with migrate_file_private and
 * benchmark_thp_migration).
 */
import {
  ASSERT_EQ, ASSERT_FALSE, ASSERT_GE, ASSERT_NE, ASSERT_TRUE, EXPECT_EQ, EXPECT_NE, SKIP, Suite, TH_LOG,
  type CaseEnv, type Metadata,
} from './harness.js';
import {
  ALIGN, Libc, MADV_COLLAPSE, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_HUGETLB,
  MAP_PRIVATE, MAP_SHARED, MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE, NULL, O_EXCL, O_RDONLY, O_RDWR,
  O_TMPFILE, PAGEMAP_PRESENT, PAGE_SIZE, PM_SWAP, PROT_NONE, PROT_READ, PROT_WRITE, SIGKILL, WEXITSTATUS,
  WIFEXITED, WIFSIGNALED, WTERMSIG, default_huge_page_size, ffs, hugetlb_free_default_pages, iota,
  pagemap_get_entry, read_pmd_pagesize,
} from './libc.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE, HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL, HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE, HMM_DMIRROR_PROT_PMD, HMM_DMIRROR_PROT_PUD, HMM_DMIRROR_PROT_READ, HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO, HMM_DMIRROR_READ, HMM_DMIRROR_RELEASE, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_WRITE, _IOWR,
  decodeCmd, encodeCmd,
} from '../drivers/test_hmm/uapi.js';
import { EEXIST, EFAULT, EINTR, EINVAL, ENOENT, EPERM } from '../kernel/errno.js';
import { KernelBug } from '../kernel/printk.js';
import type { KernelConfig } from '../kernel/config.js';
import type { Kernel } from '../kernel/kernel.js';
import { defaultConfig } from '../kernel/config.js';
import { type KernelModule, loadModule } from '../kernel/module.js';
import type { K } from '../kernel/sched/sched.js';
import { System } from '../user/system.js';
import { type Process, ProcessSignal } from '../user/process.js';
import { benchmark_thp_migration } from './benchmark.js';
import { testHmmInit } from '../drivers/test_hmm/index.js';
import { gupTestInit } from '../drivers/gup_test.js';

/* ------------------------------------------------------------------------ */
/* struct hmm_buffer and the constants                                       */
/* ------------------------------------------------------------------------ */

/** struct hmm_buffer. `self` is the malloc'd struct itself (the C pointer). */
export interface HmmBuffer {
  self: number;
  ptr: number;
  mirror: number;
  size: number;
  fd: number;
  cpages: number;
  faults: number;
}

/* enum { HMM_PRIVATE_DEVICE_ONE, ... } */
export const HMM_PRIVATE_DEVICE_ONE = 0;
export const HMM_PRIVATE_DEVICE_TWO = 1;
export const HMM_COHERENCE_DEVICE_ONE = 2;
export const HMM_COHERENCE_DEVICE_TWO = 3;

export const ONEKB = 1 << 10;
export const ONEMEG = 1 << 20;
export const TWOMEG = 1 << 21;
export const HMM_BUFFER_SIZE = 1024 << 12;
export const NTIMES = 10;

/* Just the flags we need, copied from mm.h: */
export const FOLL_WRITE = 0x01;
export const FOLL_LONGTERM = 0x100;

/* mm/gup_test.h */
const GUP_TEST_SIZE = 80;
const G = 'g'.charCodeAt(0);
export const GUP_FAST_BENCHMARK = _IOWR(G, 1, GUP_TEST_SIZE);
export const PIN_FAST_BENCHMARK = _IOWR(G, 2, GUP_TEST_SIZE);
export const PIN_LONGTERM_BENCHMARK = _IOWR(G, 3, GUP_TEST_SIZE);
export const GUP_BASIC_TEST = _IOWR(G, 4, GUP_TEST_SIZE);

/** sizeof(struct hmm_buffer) on x86-64. */
const SIZEOF_HMM_BUFFER = 48;

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                  */
/* ------------------------------------------------------------------------ */

/** What every case runs on: one machine, the test process and its libc. */
export interface HmmEnv extends CaseEnv {
  sys: System;
  p: Process;
  lc: Libc;
}

export interface HmmSelf {
  fd: number;
  page_size: number;
  page_shift: number;
}
export interface HmmVariant {
  device_number: number;
}
export interface Hmm2Self {
  fd0: number;
  fd1: number;
  page_size: number;
  page_shift: number;
}
export interface Hmm2Variant {
  device_number0: number;
  device_number1: number;
}

export function hmm_open(lc: Libc, unit: number): number {
  const pathname = `/dev/hmm_dmirror${unit}`;
  const fd = lc.open(pathname, O_RDWR, 0);
  if (fd < 0) TH_LOG(`could not open hmm dmirror driver (${pathname})`);
  return fd;
}

export function hmm_is_coherent_type(dev_num: number): boolean {
  return dev_num >= HMM_COHERENCE_DEVICE_ONE;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/** buffer = malloc(sizeof(*buffer)) */
export function hmm_buffer_new(lc: Libc): HmmBuffer {
  return { self: lc.malloc(SIZEOF_HMM_BUFFER), ptr: NULL, mirror: NULL, size: 0, fd: -1, cpages: 0, faults: 0 };
}

/** Fill a struct hmm_dmirror_cmd on the "stack" of `lc`'s process. */
function cmd_prepare(lc: Libc, buffer: HmmBuffer, npages: number): number {
  const cmd = lc.stack(HMM_DMIRROR_CMD_SIZE);
  lc.writeBytes(cmd, encodeCmd({ addr: BigInt(buffer.ptr), ptr: BigInt(buffer.mirror), npages: BigInt(npages), cpages: 0n, faults: 0n }));
  return cmd;
}

function cmd_copy_back(lc: Libc, cmd: number, buffer: HmmBuffer): void {
  const c = decodeCmd(lc.readBytes(cmd, HMM_DMIRROR_CMD_SIZE));
  buffer.cpages = Number(c.cpages);
  buffer.faults = Number(c.faults);
}

/**
 * hmm_dmirror_cmd(): the struct lives in user memory; the ioctl is retried on
 * EINTR; cpages/faults are copied back only on success; returns -errno.
 */
export function hmm_dmirror_cmd(lc: Libc, fd: number, request: number, buffer: HmmBuffer, npages: number | bigint): number {
  /* Simulate a device reading system memory. */
  const cmd = cmd_prepare(lc, buffer, 0);
  // npages may be a flags word (HMM_DMIRROR_FLAGS): store it as u64.
  lc.writeU64(cmd + 16, BigInt(npages));
  let ret: number;
  for (;;) {
    ret = lc.ioctl(fd, request, cmd);
    if (ret === 0) break;
    if (lc.errno === EINTR) continue;
    return -lc.errno;
  }
  cmd_copy_back(lc, cmd, buffer);
  return 0;
}

/** The same, as a thread body (anon_teardown): raw ioctl through p.sys. */
function* hmm_dmirror_cmd_thread(p: Process, fd: number, request: number, cmd: number): K<number> {
  for (;;) {
    const r = (yield* p.sys.ioctl(fd, request, cmd)) as number;
    if (r === 0) return 0;
    if (r === -EINTR) continue;
    return r;
  }
}

export function hmm_buffer_free(lc: Libc, buffer: HmmBuffer | null): void {
  if (buffer === null) return;
  if (buffer.ptr) {
    lc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = NULL;
  }
  lc.free(buffer.mirror);
  lc.free(buffer.self);
}

/** Create a temporary file that will be deleted on close. */
export function hmm_create_file(lc: Libc, size: number): number {
  const path = '/tmp';
  const fd = lc.open(path, O_TMPFILE | O_EXCL | O_RDWR, 0o600);
  if (fd >= 0) {
    let r: number;
    do {
      r = lc.ftruncate(fd, size);
    } while (r === -1 && lc.errno === EINTR);
    if (!r) return fd;
    lc.close(fd);
  }
  return -1;
}

/**
 * hmm_random(): /dev/urandom in the C test. The model uses a seeded
 * generator so that a failing anon_teardown schedule can be replayed.
 */
let randomState = 0x2545f491;
export function hmm_random_seed(seed: number): void {
  randomState = seed >>> 0 || 0x2545f491;
}
export function hmm_random(): number {
  let x = randomState;
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  randomState = x;
  return x;
}

/** anon_teardown: nanoseconds of hmm_nanosleep() per scheduling point. */
export const NS_PER_SCHED_POINT = 10;

export function hmm_migrate_sys_to_dev(lc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(lc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

export function hmm_migrate_dev_to_sys(lc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(lc, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/** gup_test_exec(): struct gup_test on the stack, FOLL_WRITE | flags; returns errno. */
export function gup_test_exec(lc: Libc, gup_fd: number, addr: number, cmd: number, npages: number, size: number, flags: number): number {
  const gup = lc.stack(GUP_TEST_SIZE);
  const b = new Uint8Array(GUP_TEST_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(16, BigInt(addr), true); /* .addr */
  dv.setBigUint64(24, BigInt(size), true); /* .size */
  dv.setUint32(32, npages, true); /* .nr_pages_per_call */
  dv.setUint32(36, FOLL_WRITE | flags, true); /* .gup_flags */
  lc.writeBytes(gup, b);
  if (lc.ioctl(gup_fd, cmd, gup)) {
    TH_LOG(`ioctl on error\n: ${lc.errName()}`); /* perror() */
    return lc.errno;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The suite                                                                 */
/* ------------------------------------------------------------------------ */

export interface HmmSuiteOptions {
  /** Kernel configuration of every case's machine. */
  config?: Partial<KernelConfig>;
  /** Seed of hmm_random() (anon_teardown's thread schedule and delays). */
  seed?: number;
  /**
   * A kernel WARN during a case fails it. Default false, as kselftest: the
   * WARN goes to dmesg and the test result is the test's own. The WARNs
   * are printed as `# kernel: WARNING: ...` lines and listed per case.
   */
  failOnWarn?: boolean;
  /** Called with each case's machine once its modules are loaded (e.g. to attach a tracer: src/kernel/trace.ts). */
  onMachine?: (k: Kernel) => void;
  /** Strict: the expected failures (XFAIL_ADD) count as failures (`hmmsim selftest --strict`). */
  strict?: boolean;
  /** User drivers loaded into every case's machine after test_hmm and gup_test (`--driver`). */
  modules?: Array<{ name: string; module: KernelModule }>;
  /**
   * Called on each case's machine once it is up (test_hmm loaded, the test
   * process spawned), before the fixture's setup: fault-injection sweeps
   * arm their rule and take the leak baseline here.
   */
  onReady?: (sys: System) => void;
  /**
   * Called after the case, once the test process has exited (every fd
   * closed, exit_mmap done) and before the machine is released: the
   * end-of-run leak check. Must not throw.
   */
  onExited?: (sys: System) => void;
}

function classify(e: unknown): string {
  if (e instanceof ProcessSignal) return `Test terminated unexpectedly by signal ${e.signo}`;
  if (e instanceof KernelBug) return `Test terminated by kernel ${e.kind}: ${e.rule}${e.state ? '\n' + e.state : ''}`;
  if (e instanceof Error) return `Test terminated by an exception in the model: ${e.stack ?? e.message}`;
  return `Test terminated by an exception in the model: ${String(e)}`;
}

export function buildHmmSuite(opts: HmmSuiteOptions = {}): Suite<HmmEnv> {
  const cfg = defaultConfig(opts.config ?? {});
  const failOnWarn = opts.failOnWarn ?? false;
  const seed = opts.seed ?? 0x686d6d;
  const makeEnv = (): HmmEnv => {
    // Every case starts hmm_random() from the same seed: a case behaves the
    // same whether it runs alone (--filter) or in the whole suite.
    hmm_random_seed(seed);
    const sys = new System(structuredClone(cfg));
    // test_hmm.sh: modprobe test_hmm (spm_addr_dev0/1 when config.spm), and
    // CONFIG_GUP_TEST's debugfs file. -EEXIST: the System loaded it already.
    for (const [name, init] of [['test_hmm', testHmmInit], ['gup_test', gupTestInit]] as const) {
      const r = init(sys.kernel);
      if (r !== 0 && r !== -EEXIST) sys.kernel.printk.info(`hmm-tests: loading ${name} failed: ${r}`);
    }
    if (opts.onMachine) opts.onMachine(sys.kernel);
    for (const m of opts.modules ?? []) {
      const r = loadModule(sys.kernel, m.module, m.name);
      if (r !== 0) throw new Error(`loading driver ${m.name} failed: ${r}`);
    }
    const p = sys.spawn('hmm-tests');
    const lc = new Libc(p);
    opts.onReady?.(sys);
    const env: HmmEnv = {
      sys,
      p,
      lc,
      finish(md: Metadata) {
        // Whatever the exit or the hooks throw (a HANG or BUG while the
        // test's mm is torn down), the machine's page storage is released:
        // a long run (hmmsim fail-sites) must not keep every failed case's.
        try {
          finishCase(md);
        } finally {
          sys.kernel.release();
        }
      },
    };
    const finishCase = (md: Metadata): void => {
        // The kselftest test child exits: exit_mmap() of the test's mm.
        if (p.alive) p.exit(0);
        opts.onExited?.(sys);
        // The memory traffic of the case: bytes of page contents copied,
        // read, written or filled (the selftest bench's floor).
        md.stats.contentBytes = sys.kernel.contents.bytesMoved;
        const w = sys.kernel.printk.warnings;
        md.warnings.push(...w.map((x) => x.rule));
        // dmesg: the first warnings in full, then a count per rule.
        const SHOWN = 2;
        w.slice(0, SHOWN).forEach((warn) => {
          TH_LOG(`kernel: WARNING: ${warn.rule}`);
          if (warn.state) TH_LOG(warn.state);
        });
        if (w.length > SHOWN) {
          const byRule = new Map<string, number>();
          for (const warn of w.slice(SHOWN)) byRule.set(warn.rule, (byRule.get(warn.rule) ?? 0) + 1);
          for (const [rule, n] of byRule) TH_LOG(`kernel: WARNING: ${rule} (${n} more)`);
        }
        if (w.length && failOnWarn && !md.skip && !md.failed) {
          md.failed = true;
          TH_LOG(`${md.name}: kernel WARNING during the test (${w.length}; --fail-on-warn)`);
        }
    };
    return env;
  };
  const suite = new Suite<HmmEnv>('hmm-tests', makeEnv, classify, opts.strict ?? false);

  /* HUGETLB_SETUP_DEFAULT_PAGES(1): the model's pool is config.nrHugepages. */

  const hmm = suite.fixture<HmmSelf, HmmVariant>({
    name: 'hmm',
    create: () => ({ fd: -1, page_size: 0, page_shift: 0 }),
    setup(self, variant, { lc }) {
      self.page_size = PAGE_SIZE;
      self.page_shift = ffs(self.page_size) - 1;

      self.fd = hmm_open(lc, variant.device_number);
      if (self.fd < 0 && hmm_is_coherent_type(variant.device_number)) SKIP('DEVICE_COHERENT not available');
      ASSERT_GE(self.fd, 0);
    },
    teardown(self, _variant, { lc }) {
      const ret = lc.close(self.fd);

      ASSERT_EQ(ret, 0);
      self.fd = -1;
    },
  });
  hmm.variant('hmm_device_private', { device_number: HMM_PRIVATE_DEVICE_ONE });
  hmm.variant('hmm_device_coherent', { device_number: HMM_COHERENCE_DEVICE_ONE });

  const hmm2 = suite.fixture<Hmm2Self, Hmm2Variant>({
    name: 'hmm2',
    create: () => ({ fd0: -1, fd1: -1, page_size: 0, page_shift: 0 }),
    setup(self, variant, { lc }) {
      self.page_size = PAGE_SIZE;
      self.page_shift = ffs(self.page_size) - 1;

      self.fd0 = hmm_open(lc, variant.device_number0);
      if (self.fd0 < 0 && hmm_is_coherent_type(variant.device_number0)) SKIP('DEVICE_COHERENT not available');
      ASSERT_GE(self.fd0, 0);
      self.fd1 = hmm_open(lc, variant.device_number1);
      ASSERT_GE(self.fd1, 0);
    },
    teardown(self, _variant, { lc }) {
      let ret = lc.close(self.fd0);

      ASSERT_EQ(ret, 0);
      self.fd0 = -1;

      ret = lc.close(self.fd1);
      ASSERT_EQ(ret, 0);
      self.fd1 = -1;
    },
  });
  hmm2.variant('hmm2_device_private', { device_number0: HMM_PRIVATE_DEVICE_ONE, device_number1: HMM_PRIVATE_DEVICE_TWO });
  hmm2.variant('hmm2_device_coherent', { device_number0: HMM_COHERENCE_DEVICE_ONE, device_number1: HMM_COHERENCE_DEVICE_TWO });

  /* ---------------------------------------------------------------------- */

  /*
   * Simple NULL test of device open/close.
   */
  // hmm-tests.c:295 TEST_F(hmm, open_close)
  hmm.test('open_close', () => {}, { kernelLine: KLINE.open_close });

  /*
   * Read private anonymous memory.
   */
  // hmm-tests.c:302 TEST_F(hmm, anon_read)
  hmm.test('anon_read', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /*
     * Initialize buffer in system memory but leave the first two pages
     * zero (pte_none and pfn_zero).
     */
    i = (2 * self.page_size) / 4;
    const first = i;
    lc.writeI32(buffer.ptr + first * 4, iota(size / 4 - first, 1, first));

    /* Set buffer permission to read-only. */
    ret = lc.mprotect(buffer.ptr, size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Populate the CPU page table with a special zero page. */
    const val = lc.load32(buffer.ptr + self.page_size);
    ASSERT_EQ(val, 0);

    /* Simulate a device reading system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < (2 * self.page_size) / 4; ++i) ASSERT_EQ(ptr[i], 0);
    for (; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_read });

  /*
   * Read private anonymous memory which has been protected with
   * mprotect() PROT_NONE.
   */
  // hmm-tests.c:366 TEST_F(hmm, anon_read_prot)
  hmm.test('anon_read_prot', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Initialize mirror buffer so we can verify it isn't written. */
    lc.writeI32(buffer.mirror, iota(size / 4, -1));

    /* Protect buffer from reading. */
    ret = lc.mprotect(buffer.ptr, size, PROT_NONE);
    ASSERT_EQ(ret, 0);

    /* Simulate a device reading system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, -EFAULT);

    /* Allow CPU to read the buffer so we can check it. */
    ret = lc.mprotect(buffer.ptr, size, PROT_READ);
    ASSERT_EQ(ret, 0);
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], -i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_read_prot });

  /*
   * Write private anonymous memory.
   */
  // hmm-tests.c:425 TEST_F(hmm, anon_write)
  hmm.test('anon_write', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4));

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device wrote. */
    const ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_write });

  /*
   * Write private anonymous memory which has been protected with
   * mprotect() PROT_READ.
   */
  // hmm-tests.c:473 TEST_F(hmm, anon_write_prot)
  hmm.test('anon_write_prot', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Simulate a device reading a zero page of memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_READ, buffer, 1);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, 1);
    ASSERT_EQ(buffer.faults, 1);

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4));

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, -EPERM);

    /* Check what the device wrote. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], 0);

    /* Now allow writing and see that the zero page is replaced. */
    ret = lc.mprotect(buffer.ptr, size, PROT_WRITE | PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device wrote. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_write_prot });

  /*
   * Check that a device writing an anonymous private mapping
   * will copy-on-write if a child process inherits the mapping.
   *
   * Also verifies after fork() memory the device can be read by child.
   */
  // hmm-tests.c:541 TEST_F(hmm, anon_write_child)
  hmm.test('anon_write_child', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    for (let migrate = 0; migrate < 2; ++migrate) {
      for (let use_thp = 0; use_thp < 2; ++use_thp) {
        const npages = ALIGN(use_thp ? read_pmd_pagesize(lc) : HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
        ASSERT_NE(npages, 0);
        const size = npages << self.page_shift;

        const buffer = hmm_buffer_new(lc);
        ASSERT_NE(buffer.self, NULL);

        buffer.fd = -1;
        buffer.size = size * 2;
        buffer.mirror = lc.malloc(size);
        ASSERT_NE(buffer.mirror, NULL);

        buffer.ptr = lc.mmap(NULL, size * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
        ASSERT_NE(buffer.ptr, MAP_FAILED);

        const old_ptr = buffer.ptr;
        if (use_thp) {
          const map = ALIGN(buffer.ptr, size);
          ret = lc.madvise(map, size, MADV_HUGEPAGE);
          ASSERT_EQ(ret, 0);
          buffer.ptr = map;
        }

        /* Initialize buffer->ptr so we can tell if it is written. */
        lc.writeI32(buffer.ptr, iota(size / 4));

        /* Initialize data that the device will write to buffer->ptr. */
        lc.writeI32(buffer.mirror, iota(size / 4, -1));

        if (migrate) {
          ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
          ASSERT_EQ(ret, 0);
          ASSERT_EQ(buffer.cpages, npages);
        }

        const pid = lc.fork((c) => {
          /* The child works on its own copy of *buffer. */
          const cbuf = { ...buffer };
          let cptr: Int32Array;

          /* Check that we see the parent's values. */
          cptr = c.readI32(cbuf.ptr, size / 4);
          for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], i);
          if (!migrate) {
            cptr = c.readI32(cbuf.mirror, size / 4);
            for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], -i);
          }

          /* The child process needs its own mirror to its own mm. */
          const child_fd = hmm_open(c, 0);
          ASSERT_GE(child_fd, 0);

          /* Simulate a device writing system memory. */
          const cret = hmm_dmirror_cmd(c, child_fd, HMM_DMIRROR_WRITE, cbuf, npages);
          ASSERT_EQ(cret, 0);
          ASSERT_EQ(cbuf.cpages, npages);
          ASSERT_EQ(cbuf.faults, 1);

          /* Check what the device wrote. */
          if (!migrate) {
            cptr = c.readI32(cbuf.ptr, size / 4);
            for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], -i);
          }

          c.close(child_fd);
          c._exit(0);
        });
        if (pid === -1) ASSERT_EQ(pid, 0);

        /* Parent (pid != 0). */
        [, ret] = lc.waitpid(pid);
        ASSERT_EQ(WIFEXITED(ret), 1);

        /* Check that the parent's buffer did not change. */
        ptr = lc.readI32(buffer.ptr, size / 4);
        for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

        buffer.ptr = old_ptr;
        hmm_buffer_free(lc, buffer);
      }
    }
  }, { kernelLine: KLINE.anon_write_child });

  /*
   * Check that a device writing an anonymous shared mapping
   * will not copy-on-write if a child process inherits the mapping.
   */
  // hmm-tests.c:648 TEST_F(hmm, anon_write_child_shared)
  hmm.test('anon_write_child_shared', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer->ptr so we can tell if it is written. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4, -1));

    const pid = lc.fork((c) => {
      const cbuf = { ...buffer };
      let cptr: Int32Array;

      /* Check that we see the parent's values. */
      cptr = c.readI32(cbuf.ptr, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], i);
      cptr = c.readI32(cbuf.mirror, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], -i);

      /* The child process needs its own mirror to its own mm. */
      const child_fd = hmm_open(c, 0);
      ASSERT_GE(child_fd, 0);

      /* Simulate a device writing system memory. */
      const cret = hmm_dmirror_cmd(c, child_fd, HMM_DMIRROR_WRITE, cbuf, npages);
      ASSERT_EQ(cret, 0);
      ASSERT_EQ(cbuf.cpages, npages);
      ASSERT_EQ(cbuf.faults, 1);

      /* Check what the device wrote. */
      cptr = c.readI32(cbuf.ptr, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], -i);

      c.close(child_fd);
      c._exit(0);
    });
    if (pid === -1) ASSERT_EQ(pid, 0);

    /* Parent. */
    [, ret] = lc.waitpid(pid);
    ASSERT_EQ(WIFEXITED(ret), 1);

    /* Check that the parent's buffer did change. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], -i);
    // The C test returns here without hmm_buffer_free().
  }, { kernelLine: KLINE.anon_write_child_shared });

  /*
   * Write private anonymous huge page.
   */
  // hmm-tests.c:725 TEST_F(hmm, anon_write_huge)
  hmm.test('anon_write_huge', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    let size = 2 * read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    size /= 2;
    const npages = size >> self.page_shift;
    const map = ALIGN(buffer.ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4));

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device wrote. */
    const ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_write_huge });

  /*
   * Write huge TLBFS page.
   */
  // hmm-tests.c:781 TEST_F(hmm, anon_write_hugetlbfs)
  hmm.test('anon_write_hugetlbfs', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;
    const default_hsize = default_huge_page_size(lc);

    if (!hugetlb_free_default_pages(lc)) SKIP('Not enough huge pages');

    const size = ALIGN(TWOMEG, default_hsize);
    const npages = size >> self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (buffer.ptr === MAP_FAILED) {
      lc.free(buffer.self);
      SKIP('Huge page could not be allocated');
    }

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4));

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device wrote. */
    const ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    lc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = NULL;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.anon_write_hugetlbfs });

  /*
   * Read mmap'ed file memory.
   */
  // hmm-tests.c:836 TEST_F(hmm, file_read)
  hmm.test('file_read', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const fd = hmm_create_file(lc, size);
    ASSERT_GE(fd, 0);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = fd;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    /* Write initial contents of the file. */
    lc.writeI32(buffer.mirror, iota(size / 4));
    const len = lc.pwrite(fd, buffer.mirror, size, 0);
    ASSERT_EQ(len, size);
    lc.memset(buffer.mirror, 0, size);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ, MAP_SHARED, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Simulate a device reading system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.file_read });

  /*
   * Write mmap'ed file memory.
   */
  // hmm-tests.c:891 TEST_F(hmm, file_write)
  hmm.test('file_write', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const fd = hmm_create_file(lc, size);
    ASSERT_GE(fd, 0);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = fd;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize data that the device will write to buffer->ptr. */
    lc.writeI32(buffer.mirror, iota(size / 4));

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device wrote. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Check that the device also wrote the file. */
    const len = lc.pread(fd, buffer.mirror, size, 0);
    ASSERT_EQ(len, size);
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.file_write });

  /*
   * Migrate anonymous memory to device private memory.
   */
  // hmm-tests.c:949 TEST_F(hmm, migrate)
  hmm.test('migrate', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate });

  /*
   * Migrate private file memory to device private memory.
   */
  // hmm-tests.c:995 TEST_F(hmm, migrate_file_private)
  hmm.test('migrate_file_private', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const fd = hmm_create_file(lc, size);
    ASSERT_GE(fd, 0);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = fd;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_file_private });

  /*
   * Migrate anonymous memory to device private memory and fault some of it back
   * to system memory, then try migrating the resulting mix of system and device
   * private memory to the device.
   */
  // hmm-tests.c:1047 TEST_F(hmm, migrate_fault)
  hmm.test('migrate_fault', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Fault half the pages back to system memory and check them. */
    ptr = lc.readI32(buffer.ptr, size / (2 * 4));
    for (i = 0; i < size / (2 * 4); ++i) ASSERT_EQ(ptr[i], i);

    /* Migrate memory to the device again. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_fault });

  // hmm-tests.c:1103 TEST_F(hmm, migrate_release)
  hmm.test('migrate_release', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Release device memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_RELEASE, buffer, npages);
    ASSERT_EQ(ret, 0);

    /* Fault pages back to system memory and check them. */
    ptr = lc.readI32(buffer.ptr, size / (2 * 4));
    for (i = 0; i < size / (2 * 4); ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_release });

  /*
   * Migrate anonymous shared memory to device private memory.
   */
  // hmm-tests.c:1155 TEST_F(hmm, migrate_shared)
  hmm.test('migrate_shared', (self, _variant, { lc }) => {
    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Migrate memory to device. */
    const ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, -ENOENT);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_shared });

  /*
   * Try to migrate various memory types to device private memory.
   */
  // hmm-tests.c:1190 TEST_F(hmm2, migrate_mixed)
  hmm2.test('migrate_mixed', (self, _variant, { lc }) => {
    let ret: number;
    let ptr: number;

    const npages = 6;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    /* Reserve a range of addresses. */
    buffer.ptr = lc.mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);
    const p = buffer.ptr;

    /* Migrating a protected area should be an error. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd1, buffer, npages);
    ASSERT_EQ(ret, -EINVAL);

    /* Punch a hole after the first page address. */
    ret = lc.munmap(buffer.ptr + self.page_size, self.page_size);
    ASSERT_EQ(ret, 0);

    /* We expect an error if the vma doesn't cover the range. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd1, buffer, 3);
    ASSERT_EQ(ret, -EINVAL);

    /* Page 2 will be a read-only zero page. */
    ret = lc.mprotect(buffer.ptr + 2 * self.page_size, self.page_size, PROT_READ);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 2 * self.page_size;
    const val = lc.load32(ptr) + 3;
    ASSERT_EQ(val, 3);

    /* Page 3 will be read-only. */
    ret = lc.mprotect(buffer.ptr + 3 * self.page_size, self.page_size, PROT_READ | PROT_WRITE);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 3 * self.page_size;
    lc.store32(ptr, val);
    ret = lc.mprotect(buffer.ptr + 3 * self.page_size, self.page_size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Page 4-5 will be read-write. */
    ret = lc.mprotect(buffer.ptr + 4 * self.page_size, 2 * self.page_size, PROT_READ | PROT_WRITE);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 4 * self.page_size;
    lc.store32(ptr, val);
    ptr = buffer.ptr + 5 * self.page_size;
    lc.store32(ptr, val);

    /* Now try to migrate pages 2-5 to device 1. */
    buffer.ptr = p + 2 * self.page_size;
    ret = hmm_migrate_sys_to_dev(lc, self.fd1, buffer, 4);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, 4);

    /* Page 5 won't be migrated to device 0 because it's on device 1. */
    buffer.ptr = p + 5 * self.page_size;
    ret = hmm_migrate_sys_to_dev(lc, self.fd0, buffer, 1);
    ASSERT_EQ(ret, -ENOENT);
    buffer.ptr = p;

    buffer.ptr = p;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_mixed });

  /*
   * Migrate anonymous memory to device memory and back to system memory
   * multiple times. In case of private zone configuration, this is done
   * through fault pages accessed by CPU. In case of coherent zone configuration,
   * the pages from the device should be explicitly migrated back to system memory.
   * The reason is Coherent device zone has coherent access by CPU, therefore
   * it will not generate any page fault.
   */
  // hmm-tests.c:1282 TEST_F(hmm, migrate_multiple)
  hmm.test('migrate_multiple', (self, variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    for (let c = 0; c < NTIMES; c++) {
      const buffer = hmm_buffer_new(lc);
      ASSERT_NE(buffer.self, NULL);

      buffer.fd = -1;
      buffer.size = size;
      buffer.mirror = lc.malloc(size);
      ASSERT_NE(buffer.mirror, NULL);

      buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
      ASSERT_NE(buffer.ptr, MAP_FAILED);

      /* Initialize buffer in system memory. */
      lc.writeI32(buffer.ptr, iota(size / 4));

      /* Migrate memory to device. */
      ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
      ASSERT_EQ(ret, 0);
      ASSERT_EQ(buffer.cpages, npages);

      /* Check what the device read. */
      ptr = lc.readI32(buffer.mirror, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

      /* Migrate back to system memory and check them. */
      if (hmm_is_coherent_type(variant.device_number)) {
        ret = hmm_migrate_dev_to_sys(lc, self.fd, buffer, npages);
        ASSERT_EQ(ret, 0);
        ASSERT_EQ(buffer.cpages, npages);
      }

      ptr = lc.readI32(buffer.ptr, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

      hmm_buffer_free(lc, buffer);
    }
  }, { kernelLine: KLINE.migrate_multiple });

  /*
   * Read anonymous memory multiple times.
   */
  // hmm-tests.c:1341 TEST_F(hmm, anon_read_multiple)
  hmm.test('anon_read_multiple', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    for (let c = 0; c < NTIMES; c++) {
      const buffer = hmm_buffer_new(lc);
      ASSERT_NE(buffer.self, NULL);

      buffer.fd = -1;
      buffer.size = size;
      buffer.mirror = lc.malloc(size);
      ASSERT_NE(buffer.mirror, NULL);

      buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
      ASSERT_NE(buffer.ptr, MAP_FAILED);

      /* Initialize buffer in system memory. */
      lc.writeI32(buffer.ptr, iota(size / 4, 1, c));

      /* Simulate a device reading system memory. */
      ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_READ, buffer, npages);
      ASSERT_EQ(ret, 0);
      ASSERT_EQ(buffer.cpages, npages);
      ASSERT_EQ(buffer.faults, 1);

      /* Check what the device read. */
      const ptr = lc.readI32(buffer.mirror, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i + c);

      hmm_buffer_free(lc, buffer);
    }
  }, { kernelLine: KLINE.anon_read_multiple });

  /*
   * Try reading anonymous memory while it is being unmapped.
   *
   * The C test runs unmap_buffer() in a pthread that sleeps a random time
   * (< 32 us) and munmaps the second half while the main thread's READ ioctl
   * runs. Here both are simulated threads under the kernel scheduler
   * (Process.runThreads), switching at every kernel hook point in an order
   * drawn from hmm_random(). The sleep is modelled as scheduling points the
   * thread spends waiting, one per NS_PER_SCHED_POINT ns (a hook point sits
   * at a lock boundary, some tens of ns of kernel work): the READ of 4 MiB
   * is about 2,000 points, so either side can win, as on a real machine.
   */
  // hmm-tests.c:1404 TEST_F(hmm, anon_teardown)
  hmm.test('anon_teardown', (self, _variant, { lc, p, sys }) => {
    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    for (let c = 0; c < NTIMES; ++c) {
      let i: number;
      let rc: number;

      const buffer = hmm_buffer_new(lc);
      ASSERT_NE(buffer.self, NULL);

      buffer.fd = -1;
      buffer.size = size;
      buffer.mirror = lc.malloc(size);
      ASSERT_NE(buffer.mirror, NULL);

      buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
      ASSERT_NE(buffer.ptr, MAP_FAILED);

      /* Initialize buffer in system memory. */
      lc.writeI32(buffer.ptr, iota(size / 4, 1, c));

      /*
       * rc = pthread_create(&thread, NULL, unmap_buffer, buffer);
       * The ioctl's struct is set up (and its stack page touched) before the
       * threads start: CPU accesses of the test program are not kernel paths.
       */
      const cmd = cmd_prepare(lc, buffer, npages);
      const sched = sys.kernel.sched;
      const delay = hmm_random() % 32000;
      let readRc = 0;
      const unmap_buffer = function* (): K<unknown> {
        /* Delay for a bit and then unmap buffer while it is being read. */
        for (let n = 0; n < Math.floor(delay / NS_PER_SCHED_POINT); n++) if (sched.exploring) yield sched.point('nanosleep', n);
        yield* p.sys.munmap(buffer.ptr + buffer.size / 2, buffer.size / 2);
        buffer.ptr = NULL;
        return null;
      };
      const reader = function* (): K<unknown> {
        /* Simulate a device reading system memory. */
        readRc = yield* hmm_dmirror_cmd_thread(p, self.fd, HMM_DMIRROR_READ, cmd);
        return readRc;
      };
      rc = 0;
      ASSERT_EQ(rc, 0);
      p.runThreads(hmm_random(), [reader, unmap_buffer]);

      rc = readRc;
      if (rc === 0) {
        cmd_copy_back(lc, cmd, buffer);
        ASSERT_EQ(buffer.cpages, npages);
        ASSERT_EQ(buffer.faults, 1);

        /* Check what the device read. */
        const ptr = lc.readI32(buffer.mirror, size / 4);
        for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i + c);
      }

      /* pthread_join(thread, &ret); */
      hmm_buffer_free(lc, buffer);
    }
  }, { kernelLine: KLINE.anon_teardown });

  /*
   * Test memory snapshot without faulting in pages accessed by the device.
   */
  // hmm-tests.c:1465 TEST_F(hmm, mixedmap)
  hmm.test('mixedmap', (self, _variant, { lc }) => {
    const npages = 1;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(npages);
    ASSERT_NE(buffer.mirror, NULL);

    /* Reserve a range of addresses. */
    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, self.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Simulate a device snapshotting CPU pagetables. */
    const ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device saw. */
    const m = lc.readBytes(buffer.mirror, npages);
    ASSERT_EQ(m[0], HMM_DMIRROR_PROT_READ);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.mixedmap });

  /*
   * Test memory snapshot without faulting in pages accessed by the device.
   */
  // hmm-tests.c:1507 TEST_F(hmm2, snapshot)
  hmm2.test('snapshot', (self, variant, { lc }) => {
    let ret: number;
    let ptr: number;

    const npages = 7;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(npages);
    ASSERT_NE(buffer.mirror, NULL);

    /* Reserve a range of addresses. */
    buffer.ptr = lc.mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);
    const p = buffer.ptr;

    /* Punch a hole after the first page address. */
    ret = lc.munmap(buffer.ptr + self.page_size, self.page_size);
    ASSERT_EQ(ret, 0);

    /* Page 2 will be read-only zero page. */
    ret = lc.mprotect(buffer.ptr + 2 * self.page_size, self.page_size, PROT_READ);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 2 * self.page_size;
    const val = lc.load32(ptr) + 3;
    ASSERT_EQ(val, 3);

    /* Page 3 will be read-only. */
    ret = lc.mprotect(buffer.ptr + 3 * self.page_size, self.page_size, PROT_READ | PROT_WRITE);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 3 * self.page_size;
    lc.store32(ptr, val);
    ret = lc.mprotect(buffer.ptr + 3 * self.page_size, self.page_size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Page 4-6 will be read-write. */
    ret = lc.mprotect(buffer.ptr + 4 * self.page_size, 3 * self.page_size, PROT_READ | PROT_WRITE);
    ASSERT_EQ(ret, 0);
    ptr = buffer.ptr + 4 * self.page_size;
    lc.store32(ptr, val);

    /* Page 5 will be migrated to device 0. */
    buffer.ptr = p + 5 * self.page_size;
    ret = hmm_migrate_sys_to_dev(lc, self.fd0, buffer, 1);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, 1);

    /* Page 6 will be migrated to device 1. */
    buffer.ptr = p + 6 * self.page_size;
    ret = hmm_migrate_sys_to_dev(lc, self.fd1, buffer, 1);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, 1);

    /* Simulate a device snapshotting CPU pagetables. */
    buffer.ptr = p;
    ret = hmm_dmirror_cmd(lc, self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device saw. */
    const m = lc.readBytes(buffer.mirror, npages);
    ASSERT_EQ(m[0], HMM_DMIRROR_PROT_ERROR);
    ASSERT_EQ(m[1], HMM_DMIRROR_PROT_ERROR);
    ASSERT_EQ(m[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
    ASSERT_EQ(m[3], HMM_DMIRROR_PROT_READ);
    ASSERT_EQ(m[4], HMM_DMIRROR_PROT_WRITE);
    if (!hmm_is_coherent_type(variant.device_number0)) {
      ASSERT_EQ(m[5], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
      ASSERT_EQ(m[6], HMM_DMIRROR_PROT_NONE);
    } else {
      ASSERT_EQ(m[5], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
      ASSERT_EQ(m[6], HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE);
    }

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.snapshot });

  /*
   * Test the hmm_range_fault() handling of large pages (PMD or PUD)
   * that should be mapped by a large page table entry.
   */
  // hmm-tests.c:1609 TEST_F(hmm, compound)
  hmm.test('compound', (self, _variant, { lc }) => {
    let m: Uint8Array;
    let prot: number;
    let ret: number;
    let i: number;
    const default_hsize = default_huge_page_size(lc);

    /* Skip test if we can't allocate a hugetlbfs page. */
    if (!hugetlb_free_default_pages(lc)) SKIP('Not enough huge pages');

    const size = ALIGN(TWOMEG, default_hsize);
    const npages = size >> self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (buffer.ptr === MAP_FAILED) {
      lc.free(buffer.self);
      return;
    }

    buffer.size = size;
    buffer.mirror = lc.malloc(npages);
    ASSERT_NE(buffer.mirror, NULL);

    /* Initialize the pages the device will snapshot in buffer->ptr. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Simulate a device snapshotting CPU pagetables. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /*
     * Check what the device saw.  The region is backed by a single huge
     * page that the device reports either at PMD or at PUD level depending
     * on the configured default hugepage size.  Determine that level from
     * the first page and require every page in the range to match it
     * exactly, so that a fragmented mapping mixing levels (or a missing
     * large-page bit) is still caught and reported with its actual value.
     */
    m = lc.readBytes(buffer.mirror, npages);
    prot = HMM_DMIRROR_PROT_WRITE | (m[0] & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD);
    for (i = 0; i < npages; ++i) ASSERT_EQ(m[i], prot);

    /* Make the region read-only. */
    ret = lc.mprotect(buffer.ptr, size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Simulate a device snapshotting CPU pagetables. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /*
     * Check what the device saw after mprotect(PROT_READ).  Same
     * approach as above: determine the mapping level from the first
     * page and require every page to match it exactly.
     */
    m = lc.readBytes(buffer.mirror, npages);
    prot = HMM_DMIRROR_PROT_READ | (m[0] & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD);
    for (i = 0; i < npages; ++i) ASSERT_EQ(m[i], prot);

    lc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = NULL;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.compound });

  /*
   * Test two devices reading the same memory (double mapped).
   */
  // hmm-tests.c:1697 TEST_F(hmm2, double_map)
  hmm2.test('double_map', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = 6;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    /* Reserve a range of addresses. */
    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Make region read-only. */
    ret = lc.mprotect(buffer.ptr, size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Simulate device 0 reading system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd0, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Simulate device 1 reading system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd1, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Migrate pages to device 1 and try to read from device 0. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd1, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    ret = hmm_dmirror_cmd(lc, self.fd0, HMM_DMIRROR_READ, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    ASSERT_EQ(buffer.faults, 1);

    /* Check what device 0 read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.double_map });

  /*
   * Basic check of exclusive faulting.
   */
  // hmm-tests.c:1772 TEST_F(hmm, exclusive)
  hmm.test('exclusive', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Map memory exclusively for device access. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Fault pages back to system memory and check them. */
    /* for (...) ASSERT_EQ(ptr[i]++, i): per page, read (fault) then write */
    for (let pg = 0; pg < size; pg += self.page_size) {
      ptr = lc.readI32(buffer.ptr + pg, self.page_size / 4);
      const base = pg / 4;
      for (let k = 0; k < ptr.length; k++) {
        i = base + k;
        ASSERT_EQ(ptr[k]++, i);
      }
      lc.writeI32(buffer.ptr + pg, ptr);
    }

    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i + 1);

    /* Check atomic access revoked */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buffer, npages);
    ASSERT_EQ(ret, 0);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.exclusive });

  // hmm-tests.c:1826 TEST_F(hmm, exclusive_mprotect)
  hmm.test('exclusive_mprotect', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Map memory exclusively for device access. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    ret = lc.mprotect(buffer.ptr, size, PROT_READ);
    ASSERT_EQ(ret, 0);

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ASSERT_EQ(ret, -EPERM);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.exclusive_mprotect });

  /*
   * Check copy-on-write works.
   */
  // hmm-tests.c:1879 TEST_F(hmm, exclusive_cow)
  hmm.test('exclusive_cow', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const npages = ALIGN(HMM_BUFFER_SIZE, self.page_size) >> self.page_shift;
    ASSERT_NE(npages, 0);
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Map memory exclusively for device access. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    const pid = lc.fork((c) => {
      /*
       * Child verifies COW independently, then _exit(0)s so it does
       * not run the test teardown.  A failed ASSERT_* here makes the
       * harness abort() the child, so the parent sees
       * !WIFEXITED(status) below and fails in turn.
       */
      let cptr: Int32Array;
      for (let pg = 0; pg < size; pg += self.page_size) {
        cptr = c.readI32(buffer.ptr + pg, self.page_size / 4);
        const base = pg / 4;
        for (let k = 0; k < cptr.length; k++) {
          i = base + k;
          ASSERT_EQ(cptr[k]++, i);
        }
        c.writeI32(buffer.ptr + pg, cptr);
      }

      cptr = c.readI32(buffer.ptr, size / 4);
      for (i = 0; i < size / 4; ++i) ASSERT_EQ(cptr[i], i + 1);

      c._exit(0);
    });
    if (pid === -1) ASSERT_EQ(pid, 0);

    /* Parent: also increment to verify COW works for both processes. */
    for (let pg = 0; pg < size; pg += self.page_size) {
      ptr = lc.readI32(buffer.ptr + pg, self.page_size / 4);
      const base = pg / 4;
      for (let k = 0; k < ptr.length; k++) {
        i = base + k;
        ASSERT_EQ(ptr[k]++, i);
      }
      lc.writeI32(buffer.ptr + pg, ptr);
    }

    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i + 1);

    /* Parent: wait for child and then free the buffer. */
    const [wpid, status] = lc.waitpid(pid);
    ASSERT_EQ(wpid, pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.exclusive_cow });

  /*
   * Test get user device pages through gup_test. Setting PIN_LONGTERM flag.
   * This should trigger a migration back to system memory for both, private
   * and coherent type pages.
   * This test makes use of gup_test module. Make sure GUP_TEST_CONFIG is added
   * to your configuration before you run it.
   */
  // hmm-tests.c:1977 TEST_F(hmm, hmm_gup_test)
  hmm.test('hmm_gup_test', (self, variant, { lc }) => {
    let ret: number;
    let i: number;

    const gup_fd = lc.open('/sys/kernel/debug/gup_test', O_RDWR);
    if (gup_fd === -1) SKIP('Skipping test, could not find gup_test driver');

    const npages = 4;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    /* Check what the device read. */
    let ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    ASSERT_EQ(gup_test_exec(lc, gup_fd, buffer.ptr, GUP_BASIC_TEST, 1, self.page_size, 0), 0);
    ASSERT_EQ(gup_test_exec(lc, gup_fd, buffer.ptr + 1 * self.page_size, GUP_FAST_BENCHMARK, 1, self.page_size, 0), 0);
    ASSERT_EQ(gup_test_exec(lc, gup_fd, buffer.ptr + 2 * self.page_size, PIN_FAST_BENCHMARK, 1, self.page_size, FOLL_LONGTERM), 0);
    ASSERT_EQ(gup_test_exec(lc, gup_fd, buffer.ptr + 3 * self.page_size, PIN_LONGTERM_BENCHMARK, 1, self.page_size, 0), 0);

    /* Take snapshot to CPU pagetables */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    const m = lc.readBytes(buffer.mirror, npages);
    if (hmm_is_coherent_type(variant.device_number)) {
      ASSERT_EQ(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE, m[0]);
      ASSERT_EQ(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE, m[1]);
    } else {
      ASSERT_EQ(HMM_DMIRROR_PROT_WRITE, m[0]);
      ASSERT_EQ(HMM_DMIRROR_PROT_WRITE, m[1]);
    }
    ASSERT_EQ(HMM_DMIRROR_PROT_WRITE, m[2]);
    ASSERT_EQ(HMM_DMIRROR_PROT_WRITE, m[3]);
    /*
     * Check again the content on the pages. Make sure there's no
     * corrupted data.
     */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    lc.close(gup_fd);
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.hmm_gup_test });

  /*
   * Test copy-on-write in device pages.
   * In case of writing to COW private page(s), a page fault will migrate pages
   * back to system memory first. Then, these pages will be duplicated. In case
   * of COW device coherent type, pages are duplicated directly from device
   * memory.
   */
  // hmm-tests.c:2066 TEST_F(hmm, hmm_cow_in_device)
  hmm.test('hmm_cow_in_device', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const npages = 4;
    const size = npages << self.page_shift;

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);

    buffer.ptr = lc.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */

    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    const pid = lc.fork(() => {
      /* Child process waits for SIGKILL from the parent. */
      /* while (1) { }: the child body returns without exiting and stays alive. */
    });
    if (pid === -1) ASSERT_EQ(pid, 0);
    /* Parent process writes to COW pages(s) and gets a
     * new copy in system. In case of device private pages,
     * this write causes a migration to system mem first.
     */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Terminate child and wait */
    EXPECT_EQ(0, lc.kill(pid, SIGKILL));
    const [wpid, status] = lc.waitpid(pid);
    EXPECT_EQ(pid, wpid);
    EXPECT_NE(0, WIFSIGNALED(status));
    EXPECT_EQ(SIGKILL, WTERMSIG(status));

    /* Take snapshot to CPU pagetables */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);
    const m = lc.readBytes(buffer.mirror, npages);
    for (i = 0; i < npages; i++) ASSERT_EQ(HMM_DMIRROR_PROT_WRITE, m[i]);

    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.hmm_cow_in_device });

  /*
   * Migrate private anonymous huge empty page.
   */
  // hmm-tests.c:2141 TEST_F(hmm, migrate_anon_huge_empty)
  hmm.test('migrate_anon_huge_empty', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, size);

    buffer.ptr = lc.mmap(NULL, 2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    const map = ALIGN(buffer.ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], 0);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_empty });

  /*
   * Migrate private anonymous huge zero page.
   */
  // hmm-tests.c:2192 TEST_F(hmm, migrate_anon_huge_zero)
  hmm.test('migrate_anon_huge_zero', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, size);

    buffer.ptr = lc.mmap(NULL, 2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    const map = ALIGN(buffer.ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize a read-only zero huge page. */
    const val = lc.load32(buffer.ptr);
    ASSERT_EQ(val, 0);

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], 0);

    /* Fault pages back to system memory and check them. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) {
      ASSERT_EQ(ptr[i], 0);
      /* If it asserts once, it probably will 500,000 times */
      if (ptr[i] !== 0) break;
    }

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_zero });

  /*
   * Migrate private anonymous huge page and free.
   */
  // hmm-tests.c:2256 TEST_F(hmm, migrate_anon_huge_free)
  hmm.test('migrate_anon_huge_free', (self, _variant, { lc }) => {
    let ret: number;
    let i: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, size);

    buffer.ptr = lc.mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    const map = ALIGN(buffer.ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    const ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    /* Try freeing it. */
    ret = lc.madvise(map, size, MADV_FREE);
    ASSERT_EQ(ret, 0);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_free });

  /*
   * Migrate private anonymous huge page and fault back to sysmem.
   */
  // hmm-tests.c:2315 TEST_F(hmm, migrate_anon_huge_fault)
  hmm.test('migrate_anon_huge_fault', (self, variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, size);

    buffer.ptr = lc.mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(buffer.ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    const map = ALIGN(buffer.ptr, size);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    ret = lc.madvise(map, size, MADV_COLLAPSE);
    ASSERT_EQ(ret, 0);

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    if (!hmm_is_coherent_type(variant.device_number)) {
      ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
      ASSERT_EQ(ret, 0);
      ASSERT_EQ(buffer.cpages, npages);

      const m = lc.readBytes(buffer.mirror, npages);
      for (i = 0; i < npages; ++i) ASSERT_EQ(m[i], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD);

      const pagemap_fd = lc.open('/proc/self/pagemap', O_RDONLY);
      ASSERT_GE(pagemap_fd, 0);

      for (i = 0; i < npages; ++i) {
        const entry = pagemap_get_entry(lc, pagemap_fd, buffer.ptr + i * self.page_size);

        ASSERT_NE(entry & PM_SWAP, 0);
        ASSERT_FALSE(PAGEMAP_PRESENT(entry));
      }

      lc.close(pagemap_fd);
    }

    /* Fault pages back to system memory and check them. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_fault });

  /*
   * Migrate memory and fault back to sysmem after partially unmapping.
   */
  // hmm-tests.c:2404 TEST_F(hmm, migrate_partial_unmap_fault)
  hmm.test('migrate_partial_unmap_fault', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;
    let size = read_pmd_pagesize(lc);

    if (!size) size = TWOMEG;

    const unmap_size = size / 2;
    const offsets = [0, size / 4, size / 2];

    for (let use_thp = 0; use_thp < 2; ++use_thp) {
      for (let j = 0; j < offsets.length; ++j) {
        const buffer = hmm_buffer_new(lc);
        ASSERT_NE(buffer.self, NULL);

        buffer.fd = -1;
        buffer.size = 2 * size;
        buffer.mirror = lc.malloc(size);
        ASSERT_NE(buffer.mirror, NULL);
        lc.memset(buffer.mirror, 0xff, size);

        buffer.ptr = lc.mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
        ASSERT_NE(buffer.ptr, MAP_FAILED);

        const npages = size >> self.page_shift;
        const map = ALIGN(buffer.ptr, size);
        if (use_thp) ret = lc.madvise(map, size, MADV_HUGEPAGE);
        else ret = lc.madvise(map, size, MADV_NOHUGEPAGE);
        ASSERT_EQ(ret, 0);
        const old_ptr = buffer.ptr;
        buffer.ptr = map;

        /* Initialize buffer in system memory. */
        lc.writeI32(buffer.ptr, iota(size / 4));

        /* Migrate memory to device. */
        ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
        ASSERT_EQ(ret, 0);
        ASSERT_EQ(buffer.cpages, npages);

        /* Check what the device read. */
        ptr = lc.readI32(buffer.mirror, size / 4);
        for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

        lc.munmap(buffer.ptr + offsets[j], unmap_size);

        /* Fault pages back to system memory and check them. */
        /* The C loop skips the hole: read the part before it, then after it. */
        const holeStart = offsets[j] / 4;
        const holeEnd = (offsets[j] + unmap_size) / 4;
        const before = lc.readI32(buffer.ptr, holeStart);
        const after = lc.readI32(buffer.ptr + holeEnd * 4, size / 4 - holeEnd);
        for (i = 0; i < size / 4; ++i) {
          if (i * 4 < offsets[j] || i * 4 >= offsets[j] + unmap_size) {
            const v = i < holeStart ? before[i] : after[i - holeEnd];
            ASSERT_EQ(v, i);
          }
        }

        buffer.ptr = old_ptr;
        hmm_buffer_free(lc, buffer);
      }
    }
  }, { kernelLine: KLINE.migrate_partial_unmap_fault });

  // hmm-tests.c:2479 TEST_F(hmm, migrate_remap_fault)
  hmm.test('migrate_remap_fault', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;
    let size = read_pmd_pagesize(lc);
    let new_ptr = NULL;

    if (!size) size = TWOMEG;

    const offsets = [0, size / 4, size / 2];

    for (let before = 0; before < 2; ++before) {
      for (let dont_unmap = 0; dont_unmap < 2; ++dont_unmap) {
        for (let use_thp = 0; use_thp < 2; ++use_thp) {
          for (let j = 0; j < offsets.length; ++j) {
            let flags = MREMAP_MAYMOVE | MREMAP_FIXED;

            if (dont_unmap) flags |= MREMAP_DONTUNMAP;

            const buffer = hmm_buffer_new(lc);
            ASSERT_NE(buffer.self, NULL);

            buffer.fd = -1;
            buffer.size = 8 * size;
            buffer.mirror = lc.malloc(size);
            ASSERT_NE(buffer.mirror, NULL);
            lc.memset(buffer.mirror, 0xff, size);

            buffer.ptr = lc.mmap(NULL, buffer.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
            ASSERT_NE(buffer.ptr, MAP_FAILED);

            const npages = size >> self.page_shift;
            const map = ALIGN(buffer.ptr, size);
            if (use_thp) ret = lc.madvise(map, size, MADV_HUGEPAGE);
            else ret = lc.madvise(map, size, MADV_NOHUGEPAGE);
            ASSERT_EQ(ret, 0);
            const old_ptr = buffer.ptr;
            lc.munmap(map + size, size * 2);
            buffer.ptr = map;

            /* Initialize buffer in system memory. */
            lc.writeI32(buffer.ptr, iota(size / 4));

            if (before) {
              new_ptr = lc.mremap(map, size, size, flags, map + size + offsets[j]);
              ASSERT_NE(new_ptr, MAP_FAILED);
              buffer.ptr = new_ptr;
            }

            /* Migrate memory to device. */
            ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
            ASSERT_EQ(ret, 0);
            ASSERT_EQ(buffer.cpages, npages);

            /* Check what the device read. */
            ptr = lc.readI32(buffer.mirror, size / 4);
            for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

            if (!before) {
              new_ptr = lc.mremap(map, size, size, flags, map + size + offsets[j]);
              ASSERT_NE(new_ptr, MAP_FAILED);
              buffer.ptr = new_ptr;
            }

            /* Fault pages back to system memory and check them. */
            ptr = lc.readI32(buffer.ptr, size / 4);
            for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], i);

            lc.munmap(new_ptr, size);
            buffer.ptr = old_ptr;
            hmm_buffer_free(lc, buffer);
          }
        }
      }
    }
  }, { kernelLine: KLINE.migrate_remap_fault });

  /*
   * Migrate private anonymous huge page with allocation errors.
   */
  // hmm-tests.c:2579 TEST_F(hmm, migrate_anon_huge_err)
  hmm.test('migrate_anon_huge_err', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;
    let old_ptr: number;
    let map: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(2 * size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, 2 * size);

    old_ptr = lc.mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(old_ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    map = ALIGN(old_ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ASSERT_EQ(ret, 0);
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) {
      ASSERT_EQ(ptr[i], i);
      if (ptr[i] !== i) break;
    }

    /* Try faulting back a single (PAGE_SIZE) page. */
    let iptr = buffer.ptr;
    ASSERT_EQ(lc.load32(iptr + 2048 * 4), 2048);

    /* unmap and remap the region to reset things. */
    ret = lc.munmap(old_ptr, 2 * size);
    ASSERT_EQ(ret, 0);
    old_ptr = lc.mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(old_ptr, MAP_FAILED);
    map = ALIGN(old_ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    lc.writeI32(buffer.ptr, iota(size / 4));

    /* Migrate THP to device. */
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /*
     * Force an allocation error when faulting back a THP resident in the
     * device.
     */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ASSERT_EQ(ret, 0);

    ret = hmm_migrate_dev_to_sys(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    iptr = buffer.ptr;
    ASSERT_EQ(lc.load32(iptr + 2048 * 4), 2048);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_err });

  /*
   * Migrate private anonymous huge zero page with allocation errors.
   */
  // hmm-tests.c:2674 TEST_F(hmm, migrate_anon_huge_zero_err)
  hmm.test('migrate_anon_huge_zero_err', (self, _variant, { lc }) => {
    let ptr: Int32Array;
    let ret: number;
    let i: number;
    let old_ptr: number;
    let map: number;

    const size = read_pmd_pagesize(lc);

    const buffer = hmm_buffer_new(lc);
    ASSERT_NE(buffer.self, NULL);

    buffer.fd = -1;
    buffer.size = 2 * size;
    buffer.mirror = lc.malloc(2 * size);
    ASSERT_NE(buffer.mirror, NULL);
    lc.memset(buffer.mirror, 0xff, 2 * size);

    old_ptr = lc.mmap(NULL, 2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(old_ptr, MAP_FAILED);

    const npages = size >> self.page_shift;
    map = ALIGN(old_ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    buffer.ptr = map;

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ASSERT_EQ(ret, 0);
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Check what the device read. */
    ptr = lc.readI32(buffer.mirror, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], 0);

    /* Try faulting back a single (PAGE_SIZE) page. */
    const iptr = buffer.ptr;
    ASSERT_EQ(lc.load32(iptr + 2048 * 4), 0);

    /* unmap and remap the region to reset things. */
    ret = lc.munmap(old_ptr, 2 * size);
    ASSERT_EQ(ret, 0);
    old_ptr = lc.mmap(NULL, 2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, buffer.fd, 0);
    ASSERT_NE(old_ptr, MAP_FAILED);
    map = ALIGN(old_ptr, size);
    ret = lc.madvise(map, size, MADV_HUGEPAGE);
    ASSERT_EQ(ret, 0);
    buffer.ptr = map;

    /* Initialize buffer in system memory (zero THP page). */
    /* `ptr` still holds the old mapping's address: the test relies on mmap reusing it. */
    ret = lc.load32(iptr);
    ASSERT_EQ(ret, 0);

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(lc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ASSERT_EQ(ret, 0);
    ret = hmm_migrate_sys_to_dev(lc, self.fd, buffer, npages);
    ASSERT_EQ(ret, 0);
    ASSERT_EQ(buffer.cpages, npages);

    /* Fault the device memory back and check it. */
    ptr = lc.readI32(buffer.ptr, size / 4);
    for (i = 0; i < size / 4; ++i) ASSERT_EQ(ptr[i], 0);

    buffer.ptr = old_ptr;
    hmm_buffer_free(lc, buffer);
  }, { kernelLine: KLINE.migrate_anon_huge_zero_err });

  /*
   * Benchmark THP migration with different buffer sizes
   * (TEST_F_TIMEOUT(hmm, benchmark_thp_migration, 120)): see benchmark.ts.
   */
  // hmm-tests.c:2896 TEST_F_TIMEOUT(hmm, benchmark_thp_migration, 120)
  hmm.test('benchmark_thp_migration', (self, variant, env) => benchmark_thp_migration(self, variant, env), {
    kernelLine: KLINE.benchmark_thp_migration,
    timeout: 120,
  });

  return suite;
}

/**
 * Line of each TEST_F in the kernel's hmm-tests.c (torvalds/linux
 * 0eaed89c18aeedf0898baf2dbf5ff027c6795152, 2951 lines: the version with
 * migrate_file_private, HUGETLB_SETUP_DEFAULT_PAGES and
 * benchmark_thp_migration).
 */
export const KLINE: Record<string, number> = {
  open_close: 295,
  anon_read: 302,
  anon_read_prot: 366,
  anon_write: 425,
  anon_write_prot: 473,
  anon_write_child: 541,
  anon_write_child_shared: 648,
  anon_write_huge: 725,
  anon_write_hugetlbfs: 781,
  file_read: 836,
  file_write: 891,
  migrate: 949,
  migrate_file_private: 995,
  migrate_fault: 1047,
  migrate_release: 1103,
  migrate_shared: 1155,
  migrate_mixed: 1190,
  migrate_multiple: 1282,
  anon_read_multiple: 1341,
  anon_teardown: 1404,
  mixedmap: 1465,
  snapshot: 1507,
  compound: 1609,
  double_map: 1697,
  exclusive: 1772,
  exclusive_mprotect: 1826,
  exclusive_cow: 1879,
  hmm_gup_test: 1977,
  hmm_cow_in_device: 2066,
  migrate_anon_huge_empty: 2141,
  migrate_anon_huge_zero: 2192,
  migrate_anon_huge_free: 2256,
  migrate_anon_huge_fault: 2315,
  migrate_partial_unmap_fault: 2404,
  migrate_remap_fault: 2479,
  migrate_anon_huge_err: 2579,
  migrate_anon_huge_zero_err: 2674,
  benchmark_thp_migration: 2896,
};

/** The 38 test names, in the kernel's order. */
export const HMM_TEST_NAMES = [
  'open_close', 'anon_read', 'anon_read_prot', 'anon_write', 'anon_write_prot', 'anon_write_child',
  'anon_write_child_shared', 'anon_write_huge', 'anon_write_hugetlbfs', 'file_read', 'file_write', 'migrate',
  'migrate_file_private', 'migrate_fault', 'migrate_release', 'migrate_shared', 'migrate_mixed', 'migrate_multiple',
  'anon_read_multiple', 'anon_teardown', 'mixedmap', 'snapshot', 'compound', 'double_map', 'exclusive',
  'exclusive_mprotect', 'exclusive_cow', 'hmm_gup_test', 'hmm_cow_in_device', 'migrate_anon_huge_empty',
  'migrate_anon_huge_zero', 'migrate_anon_huge_free', 'migrate_anon_huge_fault', 'migrate_partial_unmap_fault',
  'migrate_remap_fault', 'migrate_anon_huge_err', 'migrate_anon_huge_zero_err', 'benchmark_thp_migration',
] as const;
